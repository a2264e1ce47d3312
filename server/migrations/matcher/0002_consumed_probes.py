"""The probes that got a signed decision, so that the same probe bytes are refused when sent again.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.create_table(
        "vf_consumed_probes",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("probe_sha256", sa.LargeBinary(32), primary_key=True),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("vf_consumed_probes")
