"""Pseudonymous subject references: the authority sees HMAC-SHA256(pseudonym key, subject_id), never the id.

The key is 32 random bytes the matcher generates at first start in its data directory (mode 0600), or a
file named by ``VEILFACE_PSEUDONYM_KEY_FILE`` that several matcher hosts share so their subjects map to the
same references (the authority's per-subject budget depends on it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from veilface.crypto import ConfigurationError

KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """Read the key, or create it atomically (written in full to a temporary file, then linked in)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(KEY_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another worker created it first; use theirs
        finally:
            temporary.unlink(missing_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ConfigurationError(f"{path} is readable by other users; chmod 600 it")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"{path} must hold exactly {KEY_BYTES} bytes")
    return key


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def subject_ref(self, subject_id: str) -> str:
        return hmac.new(self._key, subject_id.encode(), hashlib.sha256).hexdigest()
