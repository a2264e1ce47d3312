"""The ``veilface`` command: a root whose subcommands are imported only when one is run.

``veilface --help`` lists every command from the one-line help in ``COMMANDS`` without importing any of
them, so it starts in typer's own time; this module imports neither crypto, numpy, the client nor the
server. A command that needs an optional extra (``veilface[server]``, ``veilface[bench]``) says so in one
line and exits 3 when the extra is missing, before importing anything of it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from veilface.cli.errors import fail, reported

#: The modules that tell whether an extra is installed.
EXTRA_MODULES = {
    "server": ("fastapi", "uvicorn", "sqlalchemy", "pydantic_settings"),
    "bench": ("fastapi", "uvicorn", "sqlalchemy", "pydantic_settings", "matplotlib"),
}


@dataclass(frozen=True)
class LazyCommand:
    """A subcommand of the root: ``target`` names a Typer app as ``module:attribute``; a group is that app,
    a command is the app's command called ``name``."""

    name: str
    target: str
    help: str
    group: bool = False
    extra: str | None = None

    def missing_extra(self) -> bool:
        return self.extra is not None and any(
            importlib.util.find_spec(module) is None for module in EXTRA_MODULES[self.extra]
        )

    def load(self) -> Any:
        """The click command; Exit(3) with one line if the extra it needs is not installed."""
        if self.missing_extra():
            raise fail(f"this command needs the {self.extra} extra: pip install 'veilface[{self.extra}]'")
        module, attribute = self.target.split(":")
        group = typer.main.get_group(getattr(importlib.import_module(module), attribute))
        if self.group:
            group.name = self.name
            return group
        return group.commands[self.name]


COMMANDS = (
    LazyCommand(
        "enroll",
        "veilface.cli.client:client_app",
        "Embed and encrypt the face in IMAGE here, and store only the ciphertext at the matcher.",
    ),
    LazyCommand(
        "enroll-batch",
        "veilface.cli.client:client_app",
        "Enrol every row of CSV, each face embedded and encrypted here.",
    ),
    LazyCommand(
        "verify",
        "veilface.cli.client:client_app",
        "Check IMAGE against SUBJECT. Exit 0 on match, 1 on no match, 4 if the probe is refused, 3 on errors.",
    ),
    LazyCommand(
        "delete",
        "veilface.cli.client:client_app",
        "Erase SUBJECT's template (admin scope); nothing else identifies the face.",
    ),
    LazyCommand(
        "embed",
        "veilface.cli.client:client_app",
        "List the faces in each image (box, detector score), largest first; --json adds their embeddings.",
    ),
    LazyCommand(
        "calibrate",
        "veilface.cli.client:client_app",
        "Cosine threshold at a target false-match rate, EER and failures to acquire, from labelled pairs.",
    ),
    LazyCommand(
        "demo",
        "veilface.cli.demo:demo_app",
        "Start an authority and a matcher on loopback with fresh keys, enrol and verify shipped photos.",
        extra="server",
    ),
    LazyCommand(
        "keys",
        "veilface.cli.keys:keys_app",
        "Key ceremony and key management (run at the authority).",
        group=True,
    ),
    LazyCommand(
        "serve",
        "veilface.cli.server:serve_app",
        "Run the matcher, the authority, or both on this machine.",
        group=True,
        extra="server",
    ),
    LazyCommand(
        "audit",
        "veilface.cli.audit:audit_app",
        "Check the authority's audit log.",
        group=True,
        extra="server",
    ),
    LazyCommand(
        "db",
        "veilface.cli.database:db_app",
        "Upgrade or inspect the matcher's or the authority's database schema.",
        group=True,
        extra="server",
    ),
    LazyCommand(
        "bench",
        "veilface.cli.bench:bench_app",
        "Benchmarks anyone can rerun (results as JSON + a markdown table).",
        group=True,
        extra="bench",
    ),
)


class _Unloaded(TyperCommand):
    """Stands in for a command in ``--help`` until the command is run."""


class LazyGroup(TyperGroup):
    """A group whose ``COMMANDS`` are imported when resolved to be run, never to list them in ``--help``
    (click's "lazily loaded subcommands", with static help). It reports every VeilfaceError a command
    raises, through ``errors.reported``. Contexts and commands are typed Any: typer (>= 0.26) vendors click and
    keeps its classes private."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lazy = {command.name: command for command in COMMANDS}
        for command in COMMANDS:
            self.add_command(_Unloaded(command.name, help=command.help, short_help=command.help))
        self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if isinstance(command, _Unloaded) and not self._listing:
            command = self.lazy[cmd_name].load()
            self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx: Any) -> Any:
        with reported(verbose=bool(ctx.params.get("verbose"))):
            return super().invoke(ctx)


app = typer.Typer(
    cls=LazyGroup,
    name="veilface",
    help="Privacy-preserving face verification: encrypted templates, one signed bit per decision.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details and tracebacks.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """The ``veilface`` console script."""
    app()
