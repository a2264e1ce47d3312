"""SQLAlchemy Core engines over SQLite (the default, one file, WAL) or PostgreSQL (a URL).

SQLite runs with ``journal_mode=WAL`` (readers never block the writer), ``synchronous=FULL`` (an
acknowledged write survives a power cut) and ``secure_delete=ON`` (deleted rows are overwritten with
zeros). Every write is one transaction; ``exclusive=True`` serialises writers across processes
(``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL) for read-then-append work.
The schema is Alembic's (:mod:`veilface.server.migrations`), changed only under :meth:`Database.migration_lock`.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, LargeBinary, MetaData, String, Table, event, func, select
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
    """One service's database: its tables (``metadata``, the models), transactions and a readiness probe.

    ``name`` (``matcher`` or ``authority``) picks the migrations and names the locks, so that the two
    services can share one PostgreSQL database without contending.
    """

    def __init__(self, url: str, metadata: MetaData, *, name: str) -> None:
        self.engine = create_database_engine(url)
        self.metadata = metadata
        self.name = name
        self._lock_id = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") & 0x7FFFFFFFFFFFFFFF

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def migration_lock(self) -> Iterator[Connection]:
        """A connection in an exclusive transaction that no other process's :meth:`migration_lock` overlaps.

        PostgreSQL: the transaction holds the database's advisory lock. SQLite: the process first takes an
        ``flock`` on ``<file>-migrate.lock`` beside the database (waiting as long as an upgrade takes, where
        ``BEGIN IMMEDIATE`` alone would give up after its busy timeout), then begins ``BEGIN IMMEDIATE``.
        """
        with self._file_lock(), self.transaction(exclusive=True) as conn:
            yield conn

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        path = self.engine.url.database
        if self.dialect != "sqlite" or not path:
            yield
            return
        # A file of its own: opening and closing the database file itself would drop SQLite's POSIX locks.
        fd = os.open(f"{path}-migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

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


def probe_hash_table(name: str, metadata: MetaData) -> Table:
    """One row per probe that got a signed decision: the deployment's key_id and the SHA-256 of the probe's
    exact bytes (32 bytes, not its hex). A row follows a decision the authority signed under that key, so the
    per-key cap (VEILFACE_BUDGET_PER_KEY, 1,000,000 by default) bounds the rows per key_id: ~80 MB on SQLite,
    ~230 MB on PostgreSQL at 1,000,000, on disk, not in memory (server/README.md, "Storage"). On SQLite the
    table is WITHOUT ROWID: its primary key is the table, with no second copy in an index."""
    return Table(
        name,
        metadata,
        Column("key_id", String(64), primary_key=True),
        Column("probe_sha256", LargeBinary(32), primary_key=True),
        sqlite_with_rowid=False,
    )
