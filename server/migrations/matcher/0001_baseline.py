"""The matcher's tables as veilface 0.1 made them: one encrypted template per subject.

Revision ID: 0001
Revises: none (created, or adopted from veilface 0.1: see veilface.server.migrations._baseline)
"""

from __future__ import annotations

import sqlalchemy as sa

from veilface.server.migrations._baseline import baseline_steps, legacy_version_table

revision = "0001"
down_revision: str | None = None

metadata = sa.MetaData()
sa.Table(
    "vf_templates",
    metadata,
    sa.Column("subject_id", sa.String(128), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(128), nullable=False),
    sa.Column("template", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)
legacy_version_table(metadata, "matcher")
upgrade, downgrade = baseline_steps(metadata, "matcher")
