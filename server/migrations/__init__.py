"""Alembic migrations of the matcher's and the authority's databases, run from code (no alembic.ini).

Each database has its revisions in a directory of its own (``matcher/``, ``authority/``) and its own version
table (``vf_matcher_alembic``, ``vf_authority_alembic``), so the two can share one PostgreSQL database; one
``env.py`` serves both. Revision ``0001`` is the schema veilface 0.1 made with ``create_all``: it creates the
tables in an empty database and adopts them, checked and untouched, in a database that release made.

A service brings its database up to date once, in its parent process before any worker starts
(:func:`prepare_schema`, called by the app factories), under the database's migration lock
(:meth:`~veilface.server.database.Database.migration_lock`): two matchers starting together on one database,
say during a key renewal, apply each revision once. With ``VEILFACE_AUTO_MIGRATE=false`` a service refuses a
database that is behind and names the command to run, ``veilface db upgrade --service matcher|authority``.

A schema change is a table change in ``matcher/store.py`` or ``authority/ledger.py`` plus a revision file in
this package whose ``down_revision`` is the current head. ``tests/test_server_migrations.py`` checks that the
revisions build exactly the tables the code declares; ``alembic.command.revision(alembic_config(database,
connection), message, autogenerate=True)`` drafts a revision from the difference.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from veilface.crypto import ConfigurationError
from veilface.server.database import Database

log = logging.getLogger("veilface.server.migrations")

_HERE = Path(__file__).resolve().parent


def version_table(database: Database) -> str:
    """The table holding the database's Alembic revision (one per service, so both fit in one database)."""
    return f"vf_{database.name}_alembic"


def alembic_config(database: Database, connection: Connection | None = None) -> Config:
    """Alembic's configuration for ``database``; ``env.py`` migrates ``connection`` in its open transaction."""
    versions = _HERE / database.name
    if not versions.is_dir():
        raise ConfigurationError(f"veilface has no migrations for a database named {database.name!r}")
    config = Config()
    # Values pass through configparser, which would read a "%" in a path as interpolation.
    config.set_main_option("script_location", str(_HERE).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(versions).replace("%", "%%"))
    config.attributes.update(
        connection=connection, version_table=version_table(database), target_metadata=database.metadata
    )
    return config


@dataclass(frozen=True)
class SchemaStatus:
    """A database's revision (None: empty, or made by veilface 0.1) and the one this release needs."""

    service: str
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        found = f"revision {self.current}" if self.current else "no revision (it is empty or predates migrations)"
        return f"the {self.service} database has {found}; this release needs revision {self.head}"


def _status(database: Database, connection: Connection) -> SchemaStatus:
    script = ScriptDirectory.from_config(alembic_config(database))
    head = script.get_current_head()
    if head is None:
        raise ConfigurationError(f"veilface has no migrations for a database named {database.name!r}")
    context = MigrationContext.configure(connection, opts={"version_table": version_table(database)})
    current = context.get_current_revision()
    if current is not None and current not in {revision.revision for revision in script.walk_revisions()}:
        raise ConfigurationError(
            f"the {database.name} database has revision {current}, which this release does not know: "
            "a newer veilface upgraded it (upgrade veilface)"
        )
    return SchemaStatus(database.name, current, head)


def schema_status(database: Database) -> SchemaStatus:
    """Where ``database`` stands; refuses (ConfigurationError) a revision from a newer release."""
    with database.transaction() as conn:
        return _status(database, conn)


def upgrade_schema(database: Database) -> list[str]:
    """Bring ``database`` to this release's revision under its migration lock, in one transaction.

    Returns the revisions applied, oldest first: none when another process applied them while this one
    waited for the lock.
    """
    applied: list[str] = []
    with database.migration_lock() as conn:
        if _status(database, conn).up_to_date:
            return applied
        config = alembic_config(database, conn)
        config.attributes["applied"] = applied
        command.upgrade(config, "head")
    return applied


def upgrade_hint(service: str, data_dir: Path | None) -> str:
    """The command that upgrades a service's database as the service finds it: in ``data_dir``, or (None)
    at the URL its ``VEILFACE_<SERVICE>_DATABASE_URL`` gives."""
    if data_dir is None:
        return f"`veilface db upgrade --service {service}` with the same VEILFACE_{service.upper()}_DATABASE_URL"
    return f"`veilface db upgrade --service {service} --data {shlex.quote(str(data_dir.resolve()))}`"


def prepare_schema(database: Database, *, auto_migrate: bool, data_dir: Path | None) -> SchemaStatus:
    """At a service's start, before its workers: upgrade a database that is behind, or with ``auto_migrate``
    off refuse it (ConfigurationError naming the command to run, see :func:`upgrade_hint`)."""
    try:
        status = schema_status(database)
        if status.up_to_date:
            return status
        if not auto_migrate:
            raise ConfigurationError(
                f"{status.describe()} and VEILFACE_AUTO_MIGRATE is off; run {upgrade_hint(database.name, data_dir)}"
            )
        applied = upgrade_schema(database)
    except SQLAlchemyError as exc:
        raise ConfigurationError(
            f"the {database.name} database could not be read or upgraded ({type(exc).__name__})"
        ) from None
    if applied:
        log.info("database upgraded", extra={"database": database.name, "revisions": applied})
    return SchemaStatus(database.name, status.head, status.head)
