"""The matcher's database: encrypted templates (one row per subject, written in one transaction each) and
the probes that already got a signed decision (refused when sent again, docs/design.md §2.6)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, LargeBinary, MetaData, String, Table, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from veilface.protocol import SubjectMeta, utc_now
from veilface.server.database import Database, probe_hash_table

# The tables as this release uses them; the revisions in server/migrations/matcher/ create them (a test keeps
# the two equal): a change here needs a new revision there.
metadata = MetaData()
templates = Table(
    "vf_templates",
    metadata,
    Column("subject_id", String(128), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("model_id", String(128), nullable=False),
    Column("template", LargeBinary, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)
# The probes the matcher got a signed decision for, per key: a probe's bytes are answered once.
consumed_probes = probe_hash_table("vf_consumed_probes", metadata)
_META_COLUMNS = (
    templates.c.subject_id,
    templates.c.key_id,
    templates.c.model_id,
    templates.c.created_at,
    templates.c.updated_at,
)
# Built once: SQLAlchemy then reuses their compiled form on every request.
_META = select(*_META_COLUMNS).where(templates.c.subject_id == bindparam("subject_id"))
_GET = select(*_META_COLUMNS, templates.c.template).where(templates.c.subject_id == bindparam("subject_id"))
_DELETE = delete(templates).where(templates.c.subject_id == bindparam("subject_id"))
_CONSUMED = select(consumed_probes.c.key_id).where(
    consumed_probes.c.key_id == bindparam("key_id"), consumed_probes.c.probe_sha256 == bindparam("probe_sha256")
)
_CONSUME = consumed_probes.insert()


class SubjectExistsError(Exception):
    """An enrolment without ``replace`` for a subject that already has a template."""


@dataclass(frozen=True)
class StoredTemplate:
    meta: SubjectMeta
    template: bytes


def open_template_database(url: str) -> Database:
    return Database(url, metadata, name="matcher")


class TemplateStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def meta(self, subject_id: str) -> SubjectMeta | None:
        with self.database.transaction() as conn:
            row = conn.execute(_META, {"subject_id": subject_id}).first()
        return SubjectMeta(*row) if row else None

    def get(self, subject_id: str) -> StoredTemplate | None:
        with self.database.transaction() as conn:
            row = conn.execute(_GET, {"subject_id": subject_id}).first()
        return StoredTemplate(SubjectMeta(*row[:5]), bytes(row[5])) if row else None

    def put(self, subject_id: str, *, key_id: str, model_id: str, template: bytes, replace: bool) -> SubjectMeta:
        """Insert a template, or with ``replace`` overwrite it keeping ``created_at``; one statement either way."""
        now = utc_now()
        values = {
            "subject_id": subject_id,
            "key_id": key_id,
            "model_id": model_id,
            "template": template,
            "created_at": now,
            "updated_at": now,
        }
        with self.database.transaction() as conn:
            if replace:
                insert = postgresql.insert if self.database.dialect == "postgresql" else sqlite.insert
                statement = insert(templates).values(**values)
                conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=[templates.c.subject_id],
                        set_={"key_id": key_id, "model_id": model_id, "template": template, "updated_at": now},
                    )
                )
            else:
                try:
                    conn.execute(templates.insert().values(**values))
                except IntegrityError:
                    raise SubjectExistsError(subject_id) from None
            row = conn.execute(_META, {"subject_id": subject_id}).one()
        if replace:
            self.database.truncate_journal()
        return SubjectMeta(*row)

    def delete(self, subject_id: str) -> bool:
        with self.database.transaction() as conn:
            deleted = conn.execute(_DELETE, {"subject_id": subject_id}).rowcount
        if deleted:
            self.database.truncate_journal()
        return bool(deleted)

    def probe_consumed(self, key_id: str, probe_sha256: str) -> bool:
        """Whether the probe with this SHA-256 (hex) already got a signed decision under ``key_id``."""
        with self.database.transaction() as conn:
            found = conn.execute(_CONSUMED, {"key_id": key_id, "probe_sha256": bytes.fromhex(probe_sha256)})
            return found.first() is not None

    def consume_probe(self, key_id: str, probe_sha256: str) -> bool:
        """Record that the probe got a signed decision; False if it already had one (a concurrent twin won)."""
        try:
            with self.database.transaction() as conn:
                conn.execute(_CONSUME, {"key_id": key_id, "probe_sha256": bytes.fromhex(probe_sha256)})
        except IntegrityError:
            return False
        return True
