"""veilface client: face pipeline, CLI and Python client API."""
