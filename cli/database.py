"""``veilface db upgrade|current``: the matcher's and the authority's database schema.

The services upgrade their database themselves at start-up unless ``VEILFACE_AUTO_MIGRATE=false``; then, or to
upgrade ahead of a roll-out, run ``veilface db upgrade`` with the service's settings. The database is the one
``veilface serve <service>`` would open: in ``--data DIR`` as given to it (or its default), unless
``VEILFACE_<SERVICE>_DATABASE_URL`` names one; ``--database-url`` names one explicitly.

Exit codes: 0 done (``current``: the database is at this release's revision), 1 (``current``) an upgrade is
due, 2 a usage error, 3 the database cannot be read or upgraded, or a newer release upgraded it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from veilface.cli.errors import EXIT_BEHIND, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail, reported
from veilface.cli.options import Data, DatabaseUrl, Json
from veilface.crypto import ConfigurationError
from veilface.server.authority.ledger import open_ledger_database
from veilface.server.database import Database
from veilface.server.matcher.store import open_template_database
from veilface.server.migrations import schema_status, upgrade_hint, upgrade_schema
from veilface.server.settings import AuthorityStorage, MatcherStorage

db_app = typer.Typer(
    help="Upgrade or inspect the matcher's or the authority's database schema.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Service(str, Enum):
    MATCHER = "matcher"
    AUTHORITY = "authority"


ServiceOption = Annotated[Service, typer.Option("--service", help="Whose database.", show_default=False)]


def _locate(service: Service, data: Path | None, database_url: str | None) -> tuple[str, Path | None]:
    """The service's database URL, and its data directory (None when a URL names the database)."""
    if data is not None and database_url is not None:
        raise fail("give --data DIR or --database-url URL, not both", EXIT_USAGE)
    if database_url is not None:
        return database_url, None
    # Where 'serve' would keep the database: the part of its settings that needs no keys or tokens.
    storage: MatcherStorage | AuthorityStorage
    try:
        if service is Service.MATCHER:
            storage = MatcherStorage() if data is None else MatcherStorage(matcher_data_dir=data)
        else:
            storage = AuthorityStorage() if data is None else AuthorityStorage(authority_data_dir=data)
    except ValidationError as exc:
        raise fail(f"the service's settings do not validate ({exc.errors()[0]['msg']})", EXIT_USAGE) from None
    return storage.database_url, storage.database_dir


def _open(
    service: Service, data: Path | None, database_url: str | None, *, create: bool
) -> tuple[Database, Path | None]:
    """The service's database and data directory (see :func:`_locate`); without ``create``, refuse a SQLite
    file that does not exist rather than make it."""
    url, data_dir = _locate(service, data, database_url)
    if create and data_dir is not None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the service makes it
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        parsed = None  # the opener names the problem
    if not create and parsed and parsed.get_backend_name() == "sqlite" and parsed.database:
        if not Path(parsed.database).is_file():
            raise fail(f"there is no {service.value} database at {parsed.database}", EXIT_USAGE)
    opener = open_template_database if service is Service.MATCHER else open_ledger_database
    try:
        return opener(url), data_dir
    except ConfigurationError as exc:
        raise fail(exc.message, EXIT_USAGE) from None


@contextmanager
def _reported(database: Database) -> Iterator[None]:
    """Turn a refusal or a database error into one 'Error:' line (exit 3); dispose of the engine either way."""
    try:
        with reported():
            yield
    except SQLAlchemyError as exc:
        message = f"the {database.name} database could not be read or upgraded ({type(exc).__name__})"
        raise fail(message, EXIT_FAILURE) from None
    finally:
        database.dispose()


def _where(database: Database) -> str:
    """The database's URL without its password."""
    return make_url(database.engine.url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def upgrade(
    service: ServiceOption, data: Data[Path | None] = None, database_url: DatabaseUrl = None, json_out: Json = False
) -> None:
    """Bring the service's database to this release's schema: once, under the lock the services take too."""
    database, _ = _open(service, data, database_url, create=True)
    with _reported(database):
        applied = upgrade_schema(database)
        status = schema_status(database)
    if json_out:
        answer = {"service": service.value, "database": _where(database), "revision": status.current}
        typer.echo(json.dumps({**answer, "applied": applied}))
    elif applied:
        typer.echo(f"{service.value} database {_where(database)}: upgraded to revision {status.current}")
    else:
        typer.echo(f"{service.value} database {_where(database)}: already at revision {status.current}")


@db_app.command("current")
def current(
    service: ServiceOption, data: Data[Path | None] = None, database_url: DatabaseUrl = None, json_out: Json = False
) -> None:
    """Show the service's database revision and this release's; exit 1 when an upgrade is due."""
    database, data_dir = _open(service, data, database_url, create=False)
    with _reported(database):
        status = schema_status(database)
    if json_out:
        answer = {
            "service": service.value,
            "database": _where(database),
            "current": status.current,
            "head": status.head,
            "up_to_date": status.up_to_date,
        }
        typer.echo(json.dumps(answer))
    elif status.up_to_date:
        typer.echo(f"{service.value} database {_where(database)}: at revision {status.current}, this release's")
    else:
        hint = f"`veilface db upgrade --service {service.value} --database-url URL`"
        if database_url is None:
            hint = upgrade_hint(service.value, data_dir)
        typer.echo(f"{status.describe()}: run {hint}")
    raise typer.Exit(EXIT_OK if status.up_to_date else EXIT_BEHIND)
