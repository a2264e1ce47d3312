"""The services with the plaintext stand-in ciphers, for tests and benchmarks only: NO ENCRYPTION.

Nothing in the settings or in ``veilface serve`` reaches this module. Only ``launch.start_services(...,
plaintext=True)`` runs it (as ``python -m veilface.server.standin``), and tests call its factories.
Keys, storage, budgets, audit and signatures are the real ones; only the ciphers are stand-ins, under the
deployment's real key_id, so probes come from ``PlaintextClientCipher(key_id=..., model_id=..., dimension=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import httpx
import typer
from fastapi import FastAPI

from veilface.crypto import PlaintextAuthorityCipher, PlaintextMatcherCipher
from veilface.server._serve import run_app
from veilface.server.authority import create_authority_app
from veilface.server.authority.engine import AuthorityEngine
from veilface.server.files import private_umask
from veilface.server.keystore import load_authority_keys, load_matcher_keys
from veilface.server.logs import configure_logging
from veilface.server.matcher import create_matcher_app
from veilface.server.matcher.engine import MatcherEngine
from veilface.server.settings import AuthoritySettings, MatcherSettings

VALUE_BYTES = 8  # the stand-in carries float64 values


def plaintext_matcher_app(
    settings: MatcherSettings, *, authority_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    description = load_matcher_keys(settings.matcher_keys_dir).description
    cipher = PlaintextMatcherCipher(
        key_id=description.key_id, model_id=description.model_id, dimension=description.dimension
    )
    engine = MatcherEngine.inline(cipher, ciphertext_bytes=VALUE_BYTES * description.dimension)
    return create_matcher_app(settings, engine=engine, authority_transport=authority_transport)


def plaintext_authority_app(settings: AuthoritySettings) -> FastAPI:
    key_id = load_authority_keys(settings.authority_keys_dir).secret.key_id
    cipher = PlaintextAuthorityCipher(key_id=key_id)
    engine = AuthorityEngine.inline(cipher, ciphertext_bytes=VALUE_BYTES)
    return create_authority_app(settings, engine=engine)


cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
Keys = Annotated[Path, typer.Option("--keys")]
Data = Annotated[Path, typer.Option("--data")]
Fd = Annotated[int | None, typer.Option("--fd")]
ParentPid = Annotated[int | None, typer.Option("--exit-with-parent")]


def _serve(log_level: str, app: Callable[[], FastAPI], fd: int | None, parent_pid: int | None) -> None:
    """Log at ``log_level`` and make files private before ``app`` builds the service, then serve it."""
    configure_logging(log_level)
    private_umask()
    run_app(app(), fd=fd, parent_pid=parent_pid)


@cli.command("matcher")
def matcher(keys: Keys, data: Data, fd: Fd = None, exit_with_parent: ParentPid = None) -> None:
    settings = MatcherSettings(matcher_keys_dir=keys, matcher_data_dir=data)
    _serve(settings.log_level, partial(plaintext_matcher_app, settings), fd, exit_with_parent)


@cli.command("authority")
def authority(keys: Keys, data: Data, fd: Fd = None, exit_with_parent: ParentPid = None) -> None:
    settings = AuthoritySettings(authority_keys_dir=keys, authority_data_dir=data)
    _serve(settings.log_level, partial(plaintext_authority_app, settings), fd, exit_with_parent)


if __name__ == "__main__":
    cli()
