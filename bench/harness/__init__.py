"""The harness that benchmarks and tests share: real deployments, faults on demand, fuzz targets.

- ``deployment``: fresh keys and the real matcher and authority processes on loopback, restartable in place;
  the encrypted deployment and the plaintext stand-in side by side for the service benchmarks;
- ``faults``: concurrent traffic whose every answer is timed, a throwaway PostgreSQL cluster, template pools;
- ``fuzz``: every parser's hypothesis targets and both services' HTTP APIs under schemathesis;
- ``processes``: process groups and trees of the services (members, kinds, memory, CPU), through psutil.

It uses client, server and crypto by their public names only (``tests/test_architecture.py``).
"""
