"""Alembic's environment for both databases: migrates the connection that veilface.server.migrations hands over.

Online only, inside the caller's transaction (which holds the migration lock), so a failed upgrade leaves the
database as it was. Offline SQL generation (``--sql``) is not supported.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

from veilface.crypto import ConfigurationError

config = context.config
connection = config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise ConfigurationError("veilface migrates a live database only: run `veilface db upgrade`")
applied: list[str] = config.attributes.get("applied", [])


def include_object(_object: Any, _name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate compares only the tables the models declare: it proposes no drop of 0.1's version table
    or of the other service's tables in a shared database (a drop is written by hand)."""
    return not (type_ == "table" and reflected and compare_to is None)


def record(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]) -> None:
    # Alembic calls this with keywords: the names are its.
    if step.is_upgrade:
        applied.append(step.up_revision_id or "")


context.configure(
    connection=connection,
    target_metadata=config.attributes["target_metadata"],
    version_table=config.attributes["version_table"],
    compare_type=True,
    include_object=include_object,
    on_version_apply=record,
)
with context.begin_transaction():
    context.run_migrations()
