"""The authority's tables as veilface 0.1 made them: the hash-chained audit log and decisions per key.

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
    "vf_audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("token_id", sa.String(64), nullable=False),
    sa.Column("subject_ref", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Index("ix_vf_audit_subject", "subject_ref", "granted", "at_ms"),
    sa.Index("ix_vf_audit_token", "token_id", "granted", "at_ms"),
    sa.Index("ix_vf_audit_granted", "granted", "at_ms"),
)
sa.Table(
    "vf_key_usage",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("decisions", sa.BigInteger, nullable=False),
)
legacy_version_table(metadata, "authority")
upgrade, downgrade = baseline_steps(metadata, "authority")
