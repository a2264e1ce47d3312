"""The authority's ledger: budgets, replay refusal and an append-only audit log chained by SHA-256.

Each decision (granted or refused) appends one row: sequence number, time, request id, key id, operator
token id, pseudonymous subject reference, purpose and outcome, no value of any ciphertext. A row's hash
covers its fields and the previous row's hash, so altering, deleting or reordering any row breaks every
later hash (:func:`verify_chain` finds the first). Budgets are counted from the granted rows themselves,
inside the same serialised transaction that appends, so concurrent requests cannot overspend. The same
transaction records the hash of each probe a decision is signed for (``vf_signed_probes``) and refuses a
probe hash signed for before under the same key, so two identical probes never both get a signature.
``veilface audit verify`` can open the database with :func:`open_ledger_database` and call :func:`verify_chain`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from veilface.crypto import Outcome, Purpose
from veilface.server.clock import now_ms
from veilface.server.database import Database, probe_hash_table

GENESIS_HASH = "0" * 64

# The tables as this release uses them; the revisions in server/migrations/authority/ create them (a test keeps
# the two equal): a change here needs a new revision there.
metadata = MetaData()
audit_log = Table(
    "vf_audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("key_id", String(64), nullable=False),
    Column("token_id", String(64), nullable=False),
    Column("subject_ref", String(64), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
    # Budget counts read only these indexes.
    Index("ix_vf_audit_subject", "subject_ref", "granted", "at_ms"),
    Index("ix_vf_audit_token", "token_id", "granted", "at_ms"),
    Index("ix_vf_audit_granted", "granted", "at_ms"),
)
key_usage = Table(
    "vf_key_usage",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("decisions", BigInteger, nullable=False),
)

# The probe hashes the authority signed a decision for, per key.
signed_probes = probe_hash_table("vf_signed_probes", metadata)


def open_ledger_database(url: str) -> Database:
    return Database(url, metadata, name="authority")


@dataclass(frozen=True)
class Budgets:
    per_subject: int
    subject_window_s: int
    per_token: int
    token_window_s: int
    global_per_minute: int
    per_key: int


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at_ms: int
    request_id: str
    key_id: str
    token_id: str
    subject_ref: str
    purpose: str
    outcome: str
    granted: bool
    prev_hash: str
    row_hash: str

    def expected_hash(self) -> str:
        fields = asdict(self)
        del fields["row_hash"]
        return chain_hash(fields)


def chain_hash(fields: dict[str, object]) -> str:
    """SHA-256 over the row's fields (prev_hash among them) as canonical JSON."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ReplayError(Exception):
    """The request id was used before."""


class ReplayedProbeError(Exception):
    """A decision was signed before for this probe hash under this key."""


class BudgetExhaustedError(Exception):
    def __init__(self, budget: str, retry_after_s: int | None) -> None:
        super().__init__(budget)
        self.budget = budget
        self.retry_after_s = retry_after_s


def refused_outcome(refusal: ReplayedProbeError | BudgetExhaustedError) -> str:
    """The audit row's (and the decision metric's) outcome for a refusal."""
    if isinstance(refusal, ReplayedProbeError):
        return "refused-replayed-probe"
    return f"refused-{refusal.budget}"


@dataclass(frozen=True)
class ChainCheck:
    rows: int
    first_bad_seq: int | None


def _granted_since(*conditions: ColumnElement[bool]) -> Select[int]:
    """Granted decisions since ``:since`` (epoch ms), counted only up to ``:limit`` so the work stays bounded."""
    recent = (
        select(literal(1))
        .where(audit_log.c.granted.is_(True), audit_log.c.at_ms > bindparam("since"), *conditions)
        .limit(bindparam("limit"))
    )
    return select(func.count()).select_from(recent.subquery())


# Built once: SQLAlchemy then reuses their compiled form instead of rebuilding them per decision.
_SEEN = select(audit_log.c.seq).where(audit_log.c.request_id == bindparam("request_id"))
_SUBJECT_USE = _granted_since(audit_log.c.subject_ref == bindparam("subject_ref"))
_TOKEN_USE = _granted_since(audit_log.c.token_id == bindparam("token_id"))
_GLOBAL_USE = _granted_since()
_KEY_USE = select(key_usage.c.decisions).where(key_usage.c.key_id == bindparam("key_id"))
_PROBE_SIGNED = select(signed_probes.c.key_id).where(
    signed_probes.c.key_id == bindparam("key_id"), signed_probes.c.probe_sha256 == bindparam("probe_sha256")
)
_SIGN_PROBE = signed_probes.insert()
_LAST = select(audit_log.c.seq, audit_log.c.row_hash).order_by(audit_log.c.seq.desc()).limit(1)
_APPEND = audit_log.insert()


class DecisionLedger:
    def __init__(self, database: Database, budgets: Budgets) -> None:
        self.database = database
        self.budgets = budgets
        insert = postgresql.insert if database.dialect == "postgresql" else sqlite.insert
        self._count_key_use = (
            insert(key_usage)
            .values(key_id=bindparam("key_id"), decisions=1)
            .on_conflict_do_update(index_elements=[key_usage.c.key_id], set_={"decisions": key_usage.c.decisions + 1})
        )

    def record(
        self,
        *,
        request_id: str,
        key_id: str,
        token_id: str,
        subject_ref: str,
        purpose: Purpose,
        outcome: Outcome,
        signed_probe: str | None = None,
    ) -> AuditEntry:
        """Append the decision if every budget allows it, else append a refusal and raise; one transaction.

        ``signed_probe``: the SHA-256 (hex) of the probe the decision will be signed for. A probe hash signed
        for before under ``key_id`` is refused (a refusal row, then ReplayedProbeError); a granted one is kept.
        """
        probe = {"key_id": key_id, "probe_sha256": bytes.fromhex(signed_probe)} if signed_probe else None
        with self.database.transaction(exclusive=True) as conn:
            if conn.execute(_SEEN, {"request_id": request_id}).first() is not None:
                raise ReplayError(request_id)
            at_ms = now_ms()
            refusal: ReplayedProbeError | BudgetExhaustedError | None = None
            if probe is not None and conn.execute(_PROBE_SIGNED, probe).first() is not None:
                refusal = ReplayedProbeError()
            else:
                refusal = self._exhausted(conn, at_ms, key_id=key_id, token_id=token_id, subject_ref=subject_ref)
            last = conn.execute(_LAST).first()
            seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            unhashed = AuditEntry(
                seq=seq,
                at_ms=at_ms,
                request_id=request_id,
                key_id=key_id,
                token_id=token_id,
                subject_ref=subject_ref,
                purpose=purpose.value,
                outcome=outcome.value if refusal is None else refused_outcome(refusal),
                granted=refusal is None,
                prev_hash=prev_hash,
                row_hash="",
            )
            entry = replace(unhashed, row_hash=unhashed.expected_hash())
            conn.execute(_APPEND, asdict(entry))
            if refusal is None:
                conn.execute(self._count_key_use, {"key_id": key_id})
                if probe is not None:
                    conn.execute(_SIGN_PROBE, probe)
        if refusal is not None:
            raise refusal
        return entry

    def _exhausted(
        self, conn: Connection, at_ms: int, *, key_id: str, token_id: str, subject_ref: str
    ) -> BudgetExhaustedError | None:
        b = self.budgets

        def used(query: Select[int], window_s: int, limit: int, **params: str) -> bool:
            count = conn.execute(query, {"since": at_ms - window_s * 1000, "limit": limit, **params}).scalar_one()
            return int(count) >= limit

        if used(_SUBJECT_USE, b.subject_window_s, b.per_subject, subject_ref=subject_ref):
            return BudgetExhaustedError("subject", b.subject_window_s)
        if used(_TOKEN_USE, b.token_window_s, b.per_token, token_id=token_id):
            return BudgetExhaustedError("token", b.token_window_s)
        if used(_GLOBAL_USE, 60, b.global_per_minute):
            return BudgetExhaustedError("global", 60)
        decisions = conn.execute(_KEY_USE, {"key_id": key_id}).scalar()
        if decisions is not None and decisions >= b.per_key:
            return BudgetExhaustedError("key", None)
        return None


def audit_entries(database: Database, batch: int = 1000) -> Iterator[AuditEntry]:
    """Every audit row in sequence order, read in batches."""
    after = 0
    while True:
        with database.transaction() as conn:
            rows = conn.execute(
                select(*audit_log.c).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(batch)
            ).all()
        if not rows:
            return
        for row in rows:
            yield AuditEntry(*row)
        after = rows[-1][0]


@dataclass(frozen=True)
class TokenUse:
    token_id: str
    granted: int
    refused: int
    subjects: int
    first_ms: int
    last_ms: int


def token_use(database: Database) -> list[TokenUse]:
    """Decisions per operator token: many subjects with one or two decisions each is what crafted-ciphertext
    key recovery looks like (docs/design.md §5.1), as is a token that keeps running into its budget."""
    granted = func.sum(case((audit_log.c.granted.is_(True), 1), else_=0))
    query = (
        select(
            audit_log.c.token_id,
            granted,
            func.count() - granted,
            func.count(audit_log.c.subject_ref.distinct()),
            func.min(audit_log.c.at_ms),
            func.max(audit_log.c.at_ms),
        )
        .group_by(audit_log.c.token_id)
        .order_by(func.count().desc(), audit_log.c.token_id)
    )
    with database.transaction() as conn:
        return [TokenUse(*(row[0], *(int(value) for value in row[1:]))) for row in conn.execute(query)]


def verify_chain(database: Database) -> ChainCheck:
    """Recompute the chain; report the first row whose hash, link or sequence number is wrong.

    Removing rows from the end leaves a valid shorter chain: compare ``rows`` with a count kept elsewhere
    (the decision metrics, a copy of the last hash) to detect truncation.
    """
    report = inspect_chain(database)
    return ChainCheck(report.rows, report.broken.seq if report.broken else None)


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain first fails. ``problem``: ``missing`` (a gap: rows ``expected_seq`` .. ``seq - 1`` were
    deleted), ``altered`` (the row's hash does not match its fields) or ``unlinked`` (the row does not chain
    to the previous one: that one was rewritten together with its hash, or this one was)."""

    seq: int
    expected_seq: int
    problem: str

    @property
    def first_bad_row(self) -> int:
        return self.expected_seq if self.problem == "missing" else self.seq


@dataclass(frozen=True)
class ChainReport:
    """``rows`` read up to and including the break; ``last_hash`` of the last row that checked out;
    ``anchor_seq``: the intact row whose hash is the given anchor (a last hash recorded earlier elsewhere)."""

    rows: int
    last_hash: str
    broken: ChainBreak | None
    anchor_seq: int | None = None


def inspect_chain(database: Database, *, anchor: str | None = None) -> ChainReport:
    """:func:`verify_chain` with the kind of break and the anchor's position, for ``veilface audit verify``.

    A chain without a key can be rewritten from any row onwards by whoever can write the database; an
    anchor (a row hash copied off the authority's host earlier) exposes that, and truncation past it.
    """
    prev_hash, expected_seq, rows, anchor_seq = GENESIS_HASH, 1, 0, None
    for entry in audit_entries(database):
        rows += 1
        problem = None
        if entry.seq != expected_seq:
            problem = "missing"
        elif entry.row_hash != entry.expected_hash():
            problem = "altered"
        elif entry.prev_hash != prev_hash:
            problem = "unlinked"
        if problem is not None:
            return ChainReport(rows, prev_hash, ChainBreak(entry.seq, expected_seq, problem), anchor_seq)
        if entry.row_hash == anchor:
            anchor_seq = entry.seq
        prev_hash, expected_seq = entry.row_hash, entry.seq + 1
    return ChainReport(rows, prev_hash, None, anchor_seq)
