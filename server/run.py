"""One service in this process: its app from the key directory and the environment, served by uvicorn.

``veilface serve matcher`` is ``run_app(matcher_app(keys, data), host=..., port=...)``; a service started by
``launch`` inherits its listening socket (``fd``) and exits with its supervisor (``parent_pid``). Bad keys
or settings raise ``ConfigurationError`` before anything listens, naming the variable at fault.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TypeVar

from fastapi import FastAPI
from pydantic import ValidationError

from veilface.crypto import ConfigurationError
from veilface.server._serve import run_app
from veilface.server.files import private_umask
from veilface.server.logs import configure_logging
from veilface.server.settings import AuthoritySettings, MatcherSettings

__all__ = ["DEFAULT_MATCHER_PORT", "authority_app", "matcher_app", "operator_token_file", "run_app"]

#: The matcher's port; the authority's is the next one.
DEFAULT_MATCHER_PORT = 8400

Settings = TypeVar("Settings", MatcherSettings, AuthoritySettings)


def _settings(kind: type[Settings], keys: Path, data: Path | None) -> Settings:
    """``kind`` from the environment, ``keys`` and ``data``; an invalid one is a ConfigurationError naming its
    variable."""
    try:
        settings = kind.read(keys, data)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "VEILFACE_" + "_".join(str(part) for part in first.get("loc", ())).upper()
        raise ConfigurationError(f"{name}: {first.get('msg', 'invalid')}") from None
    configure_logging(settings.log_level)
    private_umask()  # before the app creates its database: SQLite files 0600
    return settings


def matcher_app(keys: Path, data: Path | None = None) -> FastAPI:
    """The matcher on ``keys`` (evaluation/ and public/ only, never secret/), settings from the environment."""
    from veilface.server.matcher import create_matcher_app

    return create_matcher_app(_settings(MatcherSettings, keys, data))


def authority_app(keys: Path, data: Path | None = None) -> FastAPI:
    """The authority on the key ceremony's directory ``keys`` (it reads secret/), settings from the environment."""
    from veilface.server.authority import create_authority_app

    return create_authority_app(_settings(AuthoritySettings, keys, data))


def operator_token_file(path: Path) -> str:
    """The operator token in ``path`` (mode 0600), generated on first use."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()
