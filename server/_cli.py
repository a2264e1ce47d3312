"""``veilface serve matcher|authority|all``: the services from the command line."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from fastapi import FastAPI
from pydantic import ValidationError

from veilface.crypto import ConfigurationError, ServiceError
from veilface.server._serve import run_app
from veilface.server.logs import configure_logging
from veilface.server.settings import AuthoritySettings, MatcherSettings

DEFAULT_MATCHER_PORT = 8400

serve_app = typer.Typer(
    help="Run the matcher, the authority, or both on this machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

Keys = Annotated[Path, typer.Option("--keys", metavar="DIR", help="Key directory (see each command).")]
Host = Annotated[str, typer.Option(help="Address to listen on.")]
Data = Annotated[Path | None, typer.Option("--data", metavar="DIR", help="Data directory (database, keys).")]
CertFile = Annotated[Path | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM), passed to uvicorn.")]
KeyFile = Annotated[Path | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM), passed to uvicorn.")]
# Set by the supervisor of 'serve all' and launch.start_services: an inherited listening socket and its pid.
Fd = Annotated[int | None, typer.Option("--fd", hidden=True)]
ParentPid = Annotated[int | None, typer.Option("--exit-with-parent", hidden=True)]


def _fail(message: str, code: int = 3) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def _settings_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = "VEILFACE_" + "_".join(str(part) for part in first.get("loc", ())).upper()
    return f"{name}: {first.get('msg', 'invalid')}"


def _check_tls(certfile: Path | None, keyfile: Path | None) -> None:
    if (certfile is None) != (keyfile is None):
        raise _fail("--ssl-certfile and --ssl-keyfile go together", code=2)
    for path in (certfile, keyfile):
        if path is not None and not path.is_file():
            raise _fail(f"{path} does not exist", code=2)


def serve(
    build: Callable[[], FastAPI],
    *,
    host: str,
    port: int,
    fd: int | None,
    certfile: Path | None,
    keyfile: Path | None,
    parent_pid: int | None,
) -> None:
    """Build the app (refusing bad keys or settings with one 'Error:' line) and serve it."""
    _check_tls(certfile, keyfile)
    try:
        app = build()
    except ConfigurationError as exc:
        raise _fail(exc.message) from None
    except ValidationError as exc:
        raise _fail(_settings_error(exc)) from None
    run_app(app, host=host, port=port, fd=fd, ssl_certfile=certfile, ssl_keyfile=keyfile, parent_pid=parent_pid)


@serve_app.command("matcher")
def serve_matcher(
    keys: Keys,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = DEFAULT_MATCHER_PORT,
    data: Data = None,
    ssl_certfile: CertFile = None,
    ssl_keyfile: KeyFile = None,
    fd: Fd = None,
    exit_with_parent: ParentPid = None,
) -> None:
    """Run the matcher. DIR must hold only evaluation/ and public/ (never secret/)."""
    from veilface.server.matcher import create_matcher_app

    def build() -> FastAPI:
        settings = MatcherSettings(matcher_keys_dir=keys, **({"matcher_data_dir": data} if data else {}))
        configure_logging(settings.log_level)
        return create_matcher_app(settings)

    serve(build, host=host, port=port, fd=fd, certfile=ssl_certfile, keyfile=ssl_keyfile, parent_pid=exit_with_parent)


@serve_app.command("authority")
def serve_authority(
    keys: Keys,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = DEFAULT_MATCHER_PORT + 1,
    data: Data = None,
    ssl_certfile: CertFile = None,
    ssl_keyfile: KeyFile = None,
    fd: Fd = None,
    exit_with_parent: ParentPid = None,
) -> None:
    """Run the authority. DIR is the key ceremony's directory (it reads secret/)."""
    from veilface.server.authority import create_authority_app

    def build() -> FastAPI:
        settings = AuthoritySettings(authority_keys_dir=keys, **({"authority_data_dir": data} if data else {}))
        configure_logging(settings.log_level)
        return create_authority_app(settings)

    serve(build, host=host, port=port, fd=fd, certfile=ssl_certfile, keyfile=ssl_keyfile, parent_pid=exit_with_parent)


def operator_token_file(path: Path) -> str:
    """The demo operator token in ``path`` (mode 0600), created on first use."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


@serve_app.command("all")
def serve_all(
    keys: Keys,
    host: Host = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(min=0, max=65534, help="Matcher port; the authority takes the next one. 0 picks free ports."),
    ] = DEFAULT_MATCHER_PORT,
    data: Annotated[Path, typer.Option("--data", metavar="DIR", help="Data directory.")] = Path("veilface-data"),
    ssl_certfile: CertFile = None,
    ssl_keyfile: KeyFile = None,
    workers: Annotated[int, typer.Option(min=1, help="Matcher worker processes.")] = 1,
) -> None:
    """Run both on this machine: the authority on loopback, data apart in DATA/matcher and DATA/authority.

    Without VEILFACE_OPERATOR_TOKENS an operator token is generated into DATA/operator.token (mode 0600).
    """
    from veilface.server.launch import spawn_services

    _check_tls(ssl_certfile, ssl_keyfile)
    tokens = os.environ.get("VEILFACE_OPERATOR_TOKENS", "")
    token_path = data / "operator.token"
    if not tokens:
        tokens = operator_token_file(token_path)
    try:
        services = spawn_services(
            keys,
            data,
            operator_tokens=tokens,
            host=host,
            matcher_port=port,
            authority_port=port + 1 if port else 0,
            workers=workers,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            log_to_files=False,
        )
    except (ConfigurationError, ServiceError) as exc:
        raise _fail(exc.message) from None
    typer.echo(f"matcher    {services.matcher_url}", err=True)
    typer.echo(f"authority  {services.authority_url} (loopback only)", err=True)
    if not os.environ.get("VEILFACE_OPERATOR_TOKENS"):
        typer.echo(f"operator token in {token_path}", err=True)
    raise typer.Exit(services.serve_forever())


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
