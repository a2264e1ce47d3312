"""The probes that got a signed decision, so that the same probe bytes are refused when sent again.

Revision ID: 0002
Revises: 0001 (the table: see veilface.server.migrations._probes)
"""

from __future__ import annotations

from veilface.server.migrations._probes import probe_table_steps

revision = "0002"
down_revision: str | None = "0001"

upgrade, downgrade = probe_table_steps("vf_consumed_probes")
