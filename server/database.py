"""SQLAlchemy Core engines over SQLite (the default, one file, WAL) or PostgreSQL (a URL).

SQLite runs with ``journal_mode=WAL`` (readers never block the writer), ``synchronous=FULL`` (an
acknowledged write survives a power cut) and ``secure_delete=ON`` (deleted rows are overwritten with
zeros). Every write is one transaction; ``exclusive=True`` serialises writers across processes
(``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL) for read-then-append work.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, event, func, select
from sqlalchemy.engine import Engine, create_engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from veilface.crypto import ConfigurationError

log = logging.getLogger("veilface.server.database")

_EXCLUSIVE = "veilface_exclusive"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's implicit BEGIN is switched off so that _sqlite_begin decides how a transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    exclusive = connection.get_execution_options().get(_EXCLUSIVE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if exclusive else "BEGIN")


def create_database_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception:  # SQLAlchemy raises ArgumentError or ValueError for unparsable URLs
        raise ConfigurationError(
            "database URL does not parse (expected sqlite:///PATH or postgresql+psycopg://...)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigurationError("SQLite needs a file path: an in-memory database would lose every template")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 10.0})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10)
    raise ConfigurationError(f"database backend {backend!r} is not supported (use sqlite or postgresql)")


class Database:
    """One service's database: its tables, a schema version, transactions and a readiness probe."""

    def __init__(self, url: str, metadata: MetaData, *, name: str, schema_version: int) -> None:
        self.engine = create_database_engine(url)
        self.metadata = metadata
        self.schema_version = schema_version
        # Names the advisory lock on PostgreSQL, so matcher and authority sharing a server do not contend.
        self._lock_id = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") & 0x7FFFFFFFFFFFFFFF
        self._version_table = Table(
            f"vf_{name}_schema",
            MetaData(),
            Column("id", Integer, primary_key=True),
            Column("version", Integer, nullable=False),
            Column("component", String(32), nullable=False),
        )
        self.name = name

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> None:
        """Create missing tables and record the schema version; refuse a database from a newer release."""
        with self.transaction(exclusive=True) as conn:
            self.metadata.create_all(conn, checkfirst=True)
            self._version_table.create(conn, checkfirst=True)
            found = conn.execute(select(self._version_table.c.version)).scalar_one_or_none()
            if found is None:
                conn.execute(
                    self._version_table.insert().values(id=1, version=self.schema_version, component=self.name)
                )
            elif found > self.schema_version:
                raise ConfigurationError(
                    f"the {self.name} database has schema version {found}; this release knows up to "
                    f"{self.schema_version} (upgrade veilface)"
                )

    @contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if exclusive:
                conn.execution_options(**{_EXCLUSIVE: True})
            with conn.begin():
                if exclusive and self.dialect == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(self._lock_id)))
                yield conn

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError:
            return False
        return True

    def truncate_journal(self) -> None:
        """Fold SQLite's write-ahead log into the file and empty it, so deleted bytes leave the WAL too."""
        if self.dialect != "sqlite":
            return
        with self.engine.connect() as conn:
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        if busy and busy[0]:
            log.info("wal checkpoint deferred: readers active")

    def dispose(self) -> None:
        self.engine.dispose()
