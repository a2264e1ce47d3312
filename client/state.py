"""What a client remembers between runs: per authority, the newest public-bundle serial it has seen.

The authority's signature over a public bundle carries a serial (its key set: 1, then one more per key
renewal) and an expiry (docs/design.md §2.2). :func:`check_bundle_freshness` refuses an expired bundle,
accepts an older serial until it expires (during a key renewal the old matcher keeps serving until its
subjects are re-enrolled), and records the newest serial seen per authority signing-key fingerprint.

A bundle signed before serials and expiries existed never expires: it is accepted only until this client has
seen a dated bundle from the same authority, after which a matcher serving an undated one could be serving
it forever, and it is refused.

The state lives in ``VEILFACE_STATE_DIR``, else the platform's per-user state directory: ``$XDG_STATE_HOME/
veilface`` or ``~/.local/state/veilface`` (Linux and other Unixes), ``~/Library/Application Support/veilface``
(macOS), ``%LOCALAPPDATA%\\veilface`` (Windows). One file, ``bundles.json`` (mode 0600, in a 0700 directory).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from veilface.crypto import PublicDescription, SignatureError, VeilfaceError

try:
    import fcntl
except ImportError:  # Windows: writes are atomic, concurrent clients may keep the lower of two new serials
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("veilface.client")

STATE_DIR_ENV = "VEILFACE_STATE_DIR"
STATE_FILE = "bundles.json"


def default_state_dir() -> Path:
    """``VEILFACE_STATE_DIR``, else the platform's per-user state directory (see the module's doc)."""
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return Path(configured)
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or home / ".local" / "state")
    return base / "veilface"


class SeenSerials:
    """``bundles.json``: ``{fingerprint: {"serial": N, "key_id": ..., "expires_at": ...}}``, newest per key."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise VeilfaceError(f"cannot read {self.path}; delete it to start afresh") from None
        if not isinstance(data, dict) or not all(isinstance(entry, dict) for entry in data.values()):
            raise VeilfaceError(f"{self.path} is not a veilface state file; delete it to start afresh")
        return data

    def newest(self, fingerprint: str) -> int:
        """The newest serial seen from the authority with this signing-key fingerprint (0: none)."""
        serial = self._read().get(fingerprint, {}).get("serial", 0)
        return serial if isinstance(serial, int) else 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if fcntl is None:
            yield
            return
        fd = os.open(self.directory / f".{STATE_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def record(self, fingerprint: str, description: PublicDescription) -> None:
        """Keep ``description``'s serial for this authority if it is the newest seen (checked under a lock)."""
        with self._locked():
            data = self._read()
            known = data.get(fingerprint, {}).get("serial", 0)
            if isinstance(known, int) and known >= description.serial:
                return
            data[fingerprint] = {
                "serial": description.serial,
                "key_id": description.key_id,
                "expires_at": description.expires_at,
            }
            temporary = self.directory / f".{STATE_FILE}.{os.getpid()}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, self.path)


def check_bundle_freshness(
    description: PublicDescription, fingerprint: str, seen: SeenSerials, *, now: datetime | None = None
) -> None:
    """Refuse (SignatureError) a bundle whose signature has expired, or an undated one from an authority that
    has issued dated ones; record a dated bundle's serial if it is the newest seen.

    Call it after the signature verified. A state directory that cannot be written costs only the record
    (logged): the expiry is still enforced.
    """
    if not description.dated:
        newest = seen.newest(fingerprint)
        if newest:
            raise SignatureError(
                "the matcher serves a public bundle without an expiry, but this authority has signed bundles "
                f"that expire (serial {newest} seen): it may be an outdated bundle; ask the operator"
            )
        return
    if description.expired(now):
        raise SignatureError(
            f"the authority's signature over the deployment's public bundle expired at {description.expires_at}; "
            "the authority renews it with 'veilface keys extend'"
        )
    try:
        seen.record(fingerprint, description)
    except OSError as exc:
        log.warning("cannot record the bundle's serial", extra={"path": str(seen.path), "error": exc.strerror})
