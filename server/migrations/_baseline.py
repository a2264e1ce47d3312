"""Revision 0001 of both databases: create veilface 0.1's tables, or adopt the ones that release made.

Veilface 0.1 created its tables with ``create_all`` and recorded schema version 1 in ``vf_<service>_schema``.
Such a database has no Alembic version table; its revision 0001 checks that every table is there with the
columns 0.1 gave it, adds any index 0.1 would have made and that is missing, and keeps every row. A database
with only some of the tables, or other columns, is refused rather than guessed at. The version row stays:
releases before migrations read it, and a revision they cannot work with should raise it above 1.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import sqlalchemy as sa
from alembic import op

from veilface.crypto import ConfigurationError

LEGACY_SCHEMA_VERSION = 1


def legacy_version_table(metadata: sa.MetaData, service: str) -> sa.Table:
    """``vf_<service>_schema`` as veilface 0.1 declared it."""
    return sa.Table(
        f"vf_{service}_schema",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("component", sa.String(32), nullable=False),
    )


def create_or_adopt(metadata: sa.MetaData, service: str) -> None:
    """Create ``metadata``'s tables with the version row in an empty database; adopt them where they exist."""
    bind = op.get_bind()
    version = metadata.tables[f"vf_{service}_schema"]
    inspector = sa.inspect(bind)
    if not any(inspector.has_table(table.name) for table in metadata.sorted_tables):
        metadata.create_all(bind)
        bind.execute(version.insert().values(id=1, version=LEGACY_SCHEMA_VERSION, component=service))
        return
    problems = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            problems.append(f"{table.name} is missing")
            continue
        columns = sorted(column["name"] for column in inspector.get_columns(table.name))
        if columns != sorted(table.columns.keys()):
            problems.append(f"{table.name} has the columns {', '.join(columns)}")
    if problems:
        raise ConfigurationError(
            f"the {service} database holds tables that veilface 0.1 did not make ({'; '.join(problems)}); "
            "not adopting it"
        )
    found = bind.execute(sa.select(sa.func.max(version.c.version))).scalar()
    if found is not None and found > LEGACY_SCHEMA_VERSION:
        raise ConfigurationError(
            f"the {service} database has schema version {found}; this release knows up to "
            f"{LEGACY_SCHEMA_VERSION} (upgrade veilface)"
        )
    if found is None:  # as 0.1 did on opening a database without the row
        bind.execute(version.insert().values(id=1, version=LEGACY_SCHEMA_VERSION, component=service))
    for table in metadata.sorted_tables:
        existing = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in existing:
                index.create(bind)


def drop(metadata: sa.MetaData) -> None:
    """Revision 0001's downgrade: drop every table, rows and all."""
    metadata.drop_all(op.get_bind())


def baseline_steps(metadata: sa.MetaData, service: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """Revision 0001's ``upgrade`` and ``downgrade`` for the service whose 0.1 tables ``metadata`` declares."""
    return partial(create_or_adopt, metadata, service), partial(drop, metadata)
