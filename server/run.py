"""Run one service in this process: its settings (from the environment), its app, then uvicorn until SIGTERM.

``veilface serve matcher`` is ``run_service(partial(matcher_app, keys, data), host=..., port=...)``; a
service started by ``launch`` inherits its listening socket (``fd``) and exits with its supervisor (``parent_pid``).
Bad keys or settings raise ``ConfigurationError`` before anything listens, naming the variable at fault.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from pydantic import ValidationError

from veilface.crypto import ConfigurationError
from veilface.server._serve import run_app
from veilface.server.logs import configure_logging
from veilface.server.settings import AuthoritySettings, MatcherSettings

__all__ = ["DEFAULT_MATCHER_PORT", "authority_app", "matcher_app", "operator_token_file", "run_service"]

#: The matcher's port; the authority's is the next one.
DEFAULT_MATCHER_PORT = 8400


def _settings_error(exc: ValidationError) -> ConfigurationError:
    first = exc.errors()[0]
    name = "VEILFACE_" + "_".join(str(part) for part in first.get("loc", ())).upper()
    return ConfigurationError(f"{name}: {first.get('msg', 'invalid')}")


def run_service(
    build: Callable[[], FastAPI],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    fd: int | None = None,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    parent_pid: int | None = None,
) -> None:
    """Build the app (refusing bad keys or settings with ConfigurationError) and serve it until SIGTERM."""
    try:
        app = build()
    except ValidationError as exc:
        raise _settings_error(exc) from None
    run_app(app, host=host, port=port, fd=fd, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, parent_pid=parent_pid)


def matcher_app(keys: Path, data: Path | None = None) -> FastAPI:
    """The matcher on ``keys`` (evaluation/ and public/ only, never secret/), settings from the environment."""
    from veilface.server.matcher import create_matcher_app

    settings = MatcherSettings(matcher_keys_dir=keys, **({"matcher_data_dir": data} if data else {}))
    configure_logging(settings.log_level)
    return create_matcher_app(settings)


def authority_app(keys: Path, data: Path | None = None) -> FastAPI:
    """The authority on the key ceremony's directory ``keys`` (it reads secret/), settings from the environment."""
    from veilface.server.authority import create_authority_app

    settings = AuthoritySettings(authority_keys_dir=keys, **({"authority_data_dir": data} if data else {}))
    configure_logging(settings.log_level)
    return create_authority_app(settings)


def operator_token_file(path: Path) -> str:
    """The operator token in ``path`` (mode 0600), generated on first use."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()
