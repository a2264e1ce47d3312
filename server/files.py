"""File modes of the services' data: directories 0700, files 0600, whoever made them and whatever the umask.

A service calls :func:`private_umask` before it creates anything (``veilface serve``, the stand-in), so
that SQLite's database, WAL and shared-memory files and every other file it writes are 0600, and
:func:`private_directory` on its data directory at start, which also narrows one that already existed.
"""

from __future__ import annotations

import os
from pathlib import Path

from veilface.crypto import ConfigurationError

PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """Files and directories this process creates from now on are its user's only (0600, 0700)."""
    os.umask(PRIVATE_UMASK)


def private_directory(path: Path) -> None:
    """Create ``path`` (and its parents) if needed and make it 0700, also when it existed with wider modes."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise ConfigurationError(f"cannot make the data directory {path} private ({exc.strerror})") from None
