"""``veilface serve matcher | authority | all``: the services on this machine (needs veilface[server])."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from fastapi import FastAPI

from veilface.cli.errors import EXIT_USAGE, fail
from veilface.cli.options import CertFile, Data, Fd, Host, KeyFile, Keys, ParentPid, Port
from veilface.server.launch import spawn_services
from veilface.server.run import DEFAULT_MATCHER_PORT, authority_app, matcher_app, operator_token_file, run_app

serve_app = typer.Typer(help="Run the matcher, the authority, or both on this machine.", no_args_is_help=True)


def _check_tls(certfile: Path | None, keyfile: Path | None) -> None:
    if (certfile is None) != (keyfile is None):
        raise fail("--ssl-certfile and --ssl-keyfile go together", EXIT_USAGE)
    for path in (certfile, keyfile):
        if path is not None and not path.is_file():
            raise fail(f"{path} does not exist", EXIT_USAGE)


def _add_service(name: str, build: Callable[[Path, Path | None], FastAPI], default_port: int, summary: str) -> None:
    """``serve NAME``: one service in this process, its app ``build(keys, data)``."""

    def command(
        keys: Keys,
        host: Host = "127.0.0.1",
        port: Port = default_port,
        data: Data[Path | None] = None,
        ssl_certfile: CertFile = None,
        ssl_keyfile: KeyFile = None,
        fd: Fd = None,
        exit_with_parent: ParentPid = None,
    ) -> None:
        _check_tls(ssl_certfile, ssl_keyfile)
        run_app(
            build(keys, data),
            host=host,
            port=port,
            fd=fd,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            parent_pid=exit_with_parent,
        )

    serve_app.command(name, help=summary)(command)


_add_service(
    "matcher",
    matcher_app,
    DEFAULT_MATCHER_PORT,
    "Run the matcher. DIR must hold only evaluation/ and public/ (never secret/).",
)
_add_service(
    "authority",
    authority_app,
    DEFAULT_MATCHER_PORT + 1,
    "Run the authority. DIR is the key ceremony's directory (it reads secret/).",
)


@serve_app.command("all")
def serve_all(
    keys: Keys,
    host: Host = "127.0.0.1",
    port: Port = DEFAULT_MATCHER_PORT,
    data: Data[Path] = Path("veilface-data"),
    ssl_certfile: CertFile = None,
    ssl_keyfile: KeyFile = None,
    workers: Annotated[int, typer.Option(min=1, help="Matcher worker processes.")] = 1,
) -> None:
    """Run both on this machine: the matcher on --port, the authority on the next port, on loopback.

    --port 0 picks free ports. The two keep their data apart, in DATA/matcher and DATA/authority. Without
    VEILFACE_OPERATOR_TOKENS an operator token is generated into DATA/operator.token (mode 0600).
    """
    if port == 65535:
        raise typer.BadParameter("leaves no port for the authority", param_hint="--port")
    _check_tls(ssl_certfile, ssl_keyfile)
    tokens = os.environ.get("VEILFACE_OPERATOR_TOKENS", "")
    token_path = data / "operator.token"
    if not tokens:
        tokens = operator_token_file(token_path)
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
    typer.echo(f"matcher    {services.matcher_url}", err=True)
    typer.echo(f"authority  {services.authority_url} (loopback only)", err=True)
    if not os.environ.get("VEILFACE_OPERATOR_TOKENS"):
        typer.echo(f"operator token in {token_path}", err=True)
    raise typer.Exit(services.serve_forever())
