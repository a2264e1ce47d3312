"""Revision 0002 of both databases: the table of probe hashes that got a signed decision.

The matcher (``vf_consumed_probes``) and the authority (``vf_signed_probes``) each keep one, with the same
columns: the deployment's key id and the SHA-256 of the probe's exact bytes. Revision 0002 is released, so what
this module creates stays as it is; a change to the tables needs a new revision.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import sqlalchemy as sa
from alembic import op


def create(name: str) -> None:
    """Revision 0002's upgrade: create the probe table ``name``."""
    op.create_table(
        name,
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("probe_sha256", sa.LargeBinary(32), primary_key=True),
        sqlite_with_rowid=False,
    )


def drop(name: str) -> None:
    """Revision 0002's downgrade: drop the probe table ``name``, rows and all."""
    op.drop_table(name)


def probe_table_steps(name: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """Revision 0002's ``upgrade`` and ``downgrade`` for the service whose probe table is ``name``."""
    return partial(create, name), partial(drop, name)
