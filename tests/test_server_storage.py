"""Storage on SQLite and PostgreSQL: templates, erasure, the decision ledger (the schema: test_server_migrations)."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import pytest

from veilface.crypto import ConfigurationError, Outcome, Purpose
from veilface.server.authority.ledger import (
    BudgetExhaustedError,
    Budgets,
    ChainCheck,
    DecisionLedger,
    ReplayError,
    audit_log,
    open_ledger_database,
    verify_chain,
)
from veilface.server.database import Database
from veilface.server.matcher.pseudonym import load_or_create_key
from veilface.server.matcher.store import SubjectExistsError, TemplateStore, open_template_database
from veilface.server.migrations import upgrade_schema


@pytest.fixture
def store(database_url: str) -> TemplateStore:
    database = open_template_database(database_url)
    upgrade_schema(database)
    return TemplateStore(database)


def template(marker: bytes) -> bytes:
    return marker * 4096


def test_templates_round_trip(store: TemplateStore) -> None:
    meta = store.put("alice", key_id="k1", model_id="m1", template=template(b"A"), replace=False)
    stored = store.get("alice")
    assert stored is not None and stored.template == template(b"A") and stored.meta == meta
    assert store.meta("alice") == meta and store.get("nobody") is None
    with pytest.raises(SubjectExistsError):
        store.put("alice", key_id="k1", model_id="m1", template=template(b"B"), replace=False)
    replaced = store.put("alice", key_id="k2", model_id="m1", template=template(b"C"), replace=True)
    assert replaced.created_at == meta.created_at and replaced.key_id == "k2"
    assert store.get("alice").template == template(b"C")  # type: ignore[union-attr]
    assert store.delete("alice") and not store.delete("alice") and store.get("alice") is None
    store.database.dispose()


def test_concurrent_enrolments_of_one_subject_store_exactly_one(store: TemplateStore) -> None:
    outcomes: list[str] = []

    def enrol(marker: bytes) -> None:
        try:
            store.put("bob", key_id="k", model_id="m", template=template(marker), replace=False)
            outcomes.append("stored")
        except SubjectExistsError:
            outcomes.append("exists")

    threads = [threading.Thread(target=enrol, args=(bytes([65 + i]),)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["exists"] * 5 + ["stored"]
    stored = store.get("bob")
    assert stored is not None and len(set(stored.template)) == 1  # one writer's bytes, whole
    store.database.dispose()


def test_deleted_and_replaced_templates_leave_the_sqlite_files(tmp_path: Path) -> None:
    store = TemplateStore(open_template_database(f"sqlite:///{tmp_path / 'matcher.db'}"))
    upgrade_schema(store.database)
    first, second, kept = secrets.token_bytes(32), secrets.token_bytes(32), secrets.token_bytes(32)
    store.put("carol", key_id="k", model_id="m", template=first * 512, replace=False)
    store.put("dave", key_id="k", model_id="m", template=kept * 512, replace=False)
    store.put("carol", key_id="k", model_id="m", template=second * 512, replace=True)

    def on_disk() -> bytes:
        return b"".join(path.read_bytes() for path in tmp_path.iterdir())

    assert first not in on_disk() and second in on_disk()
    store.delete("carol")
    assert second not in on_disk() and kept in on_disk()
    store.database.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://x/y", "not a url"])
def test_unusable_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_template_database(url)


def test_ping_reports_an_unreachable_database(tmp_path: Path) -> None:
    database = Database("postgresql+psycopg://nobody:x@127.0.0.1:1/none", audit_log.metadata, name="probe")
    assert database.ping() is False
    sqlite = open_template_database(f"sqlite:///{tmp_path / 'ok.db'}")
    assert sqlite.ping() is True


def budgets(**overrides: int) -> Budgets:
    values = {
        "per_subject": 100,
        "subject_window_s": 3600,
        "per_token": 100,
        "token_window_s": 3600,
        "global_per_minute": 100,
        "per_key": 100,
    }
    return Budgets(**{**values, **overrides})


def record(ledger: DecisionLedger, subject: str = "s" * 64, request_id: str | None = None) -> str:
    return ledger.record(
        request_id=request_id or secrets.token_hex(16),
        key_id="k" * 32,
        token_id="t" * 32,
        subject_ref=subject,
        purpose=Purpose.VERIFY,
        outcome=Outcome.MATCH,
    ).outcome


def test_ledger_budgets_replay_and_chain(database_url: str) -> None:
    ledger = DecisionLedger(open_ledger_database(database_url), budgets(per_subject=2))
    upgrade_schema(ledger.database)
    assert [record(ledger), record(ledger)] == ["match", "match"]
    with pytest.raises(BudgetExhaustedError) as refused:
        record(ledger)
    assert refused.value.budget == "subject"
    assert record(ledger, subject="u" * 64, request_id="r" * 32) == "match"
    with pytest.raises(ReplayError):
        record(ledger, subject="v" * 64, request_id="r" * 32)
    assert verify_chain(ledger.database) == ChainCheck(4, None)
    with ledger.database.transaction() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.seq == 2))
    assert verify_chain(ledger.database) == ChainCheck(2, 3)
    ledger.database.dispose()


def test_concurrent_decisions_never_overspend(database_url: str) -> None:
    """Writers in parallel threads (each its own connection) share one budget of 5 exactly."""
    ledger = DecisionLedger(open_ledger_database(database_url), budgets(per_subject=5))
    upgrade_schema(ledger.database)
    results: list[str] = []

    def attempt() -> None:
        try:
            results.append(record(ledger))
        except BudgetExhaustedError:
            results.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("match") == 5 and results.count("refused") == 7
    assert verify_chain(ledger.database) == ChainCheck(12, None)
    ledger.database.dispose()


def test_pseudonym_key_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "pseudonym.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_or_create_key(path)
