"""``python -m veilface.server matcher|authority|all ...``: the same commands as ``veilface serve``."""

from veilface.server._cli import serve_app

if __name__ == "__main__":
    serve_app()
