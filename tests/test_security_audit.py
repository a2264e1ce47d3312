"""`veilface audit verify`: the authority's hash-chained audit log, checked from the command line.

Rows are written by the authority's own ledger code, then altered the way someone with write access to the
database file would: with the sqlite3 module, behind the authority's back.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from veilface.cli.app import app
from veilface.crypto import Outcome, Purpose
from veilface.server.authority.ledger import AuditEntry, Budgets, DecisionLedger, chain_hash, open_ledger_database
from veilface.server.migrations import upgrade_schema

TOKENS = ("a" * 32, "b" * 32)
ROWS = 6
GENEROUS = Budgets(
    per_subject=100, subject_window_s=3600, per_token=100, token_window_s=86400, global_per_minute=100, per_key=100
)


def write_rows(url: str, rows: int = ROWS) -> None:
    """``rows`` decisions, alternating between two tokens; the first token's second subject is refused."""
    ledger = DecisionLedger(open_ledger_database(url), GENEROUS)
    upgrade_schema(ledger.database)
    for number in range(rows):
        ledger.record(
            request_id=secrets.token_hex(16),
            key_id="k" * 32,
            token_id=TOKENS[number % 2],
            subject_ref=f"{number // 2:064x}",
            purpose=Purpose.VERIFY,
            outcome=Outcome.MATCH if number % 3 else Outcome.NO_MATCH,
        )
    ledger.database.dispose()


def audit(*args: str) -> Result:
    return CliRunner().invoke(app, ["audit", "verify", *args])


def sql(path: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement, params)


def report(*args: str) -> tuple[int, dict[str, object]]:
    result = audit(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def authority_data(tmp_path: Path) -> Path:
    """An authority's data directory holding its SQLite database."""
    write_rows(f"sqlite:///{tmp_path / 'authority.db'}")
    return tmp_path


def test_an_intact_chain_passes_and_an_altered_row_is_named(authority_data: Path) -> None:
    intact = audit("--data", str(authority_data))
    assert intact.exit_code == 0, intact.output
    assert intact.stdout.startswith(f"audit chain intact: {ROWS} rows, last hash ")
    code, body = report("--data", str(authority_data))
    assert code == 0 and body["intact"] is True and body["rows_checked"] == ROWS and body["first_bad_row"] is None

    flip = "CASE outcome WHEN 'match' THEN 'no_match' ELSE 'match' END"
    sql(authority_data / "authority.db", f"UPDATE vf_audit_log SET outcome = {flip} WHERE seq = 3")
    altered = audit("--data", str(authority_data))
    assert altered.exit_code == 1
    assert altered.stderr == "Error: audit chain broken: row 3 was altered (its hash does not match its contents)\n"
    code, body = report("--data", str(authority_data))
    assert code == 1 and (body["intact"], body["first_bad_row"], body["problem"]) == (False, 3, "altered")
    assert body["rows_checked"] == 3


def test_a_deleted_middle_row_is_named_in_the_serve_all_layout(tmp_path: Path) -> None:
    """`serve all --data DIR` keeps the authority's database in DIR/authority; both layouts are found."""
    (tmp_path / "authority").mkdir()
    write_rows(f"sqlite:///{tmp_path / 'authority' / 'authority.db'}")
    assert audit("--data", str(tmp_path)).exit_code == 0
    sql(tmp_path / "authority" / "authority.db", "DELETE FROM vf_audit_log WHERE seq = 4")
    deleted = audit("--data", str(tmp_path))
    assert deleted.exit_code == 1
    assert "row 4 is missing (row 5 follows row 3)" in deleted.stderr
    code, body = report("--data", str(tmp_path))
    assert code == 1 and (body["first_bad_row"], body["problem"]) == (4, "missing")


def test_a_rewritten_chain_is_caught_only_by_an_anchor(authority_data: Path) -> None:
    """Someone who recomputes the altered row's hash breaks the link to the next row; someone who recomputes
    every later hash too leaves a valid chain, which only a hash recorded off the host (an anchor) exposes."""
    database = authority_data / "authority.db"
    _, before = report("--data", str(authority_data))
    anchor = str(before["last_hash"])
    assert audit("--data", str(authority_data), "--anchor", anchor).stdout.endswith(f"anchor at row {ROWS}\n")

    def rows() -> list[AuditEntry]:
        with sqlite3.connect(database) as conn:
            columns = "seq, at_ms, request_id, key_id, token_id, subject_ref, purpose, outcome, granted"
            found = conn.execute(f"SELECT {columns}, prev_hash, row_hash FROM vf_audit_log ORDER BY seq").fetchall()
        return [AuditEntry(*row[:8], bool(row[8]), *row[9:]) for row in found]

    def rehash(entry: AuditEntry, prev_hash: str, **changes: object) -> str:
        fields = {**entry.__dict__, **changes, "prev_hash": prev_hash}
        del fields["row_hash"]
        row_hash = chain_hash(fields)
        sql(
            database,
            "UPDATE vf_audit_log SET outcome = ?, prev_hash = ?, row_hash = ? WHERE seq = ?",
            fields["outcome"],
            prev_hash,
            row_hash,
            entry.seq,
        )
        return row_hash

    entries = rows()
    forged = rehash(entries[1], entries[0].row_hash, outcome="no_match" if entries[1].outcome == "match" else "match")
    code, body = report("--data", str(authority_data))
    assert code == 1 and (body["first_bad_row"], body["problem"]) == (3, "unlinked")

    for entry in entries[2:]:
        forged = rehash(entry, forged)
    assert audit("--data", str(authority_data)).exit_code == 0  # a consistent forgery, as far as the chain goes
    anchored = audit("--data", str(authority_data), "--anchor", anchor)
    assert anchored.exit_code == 1 and "the anchor is not in the chain" in anchored.stderr
    code, body = report("--data", str(authority_data), "--anchor", anchor)
    assert code == 1 and body["intact"] is False and body["anchor_row"] is None


def test_decisions_are_counted_per_token(authority_data: Path) -> None:
    code, body = report("--data", str(authority_data), "--by-token")
    assert code == 0
    tokens = body["tokens"]
    assert isinstance(tokens, list)
    assert {t["token_id"]: (t["granted"], t["refused"], t["subjects"]) for t in tokens} == {
        TOKENS[0]: (3, 0, 3),
        TOKENS[1]: (3, 0, 3),
    }
    text = audit("--data", str(authority_data), "--by-token").stdout
    assert f"token {TOKENS[0]}: 3 granted, 0 refused, 3 subjects" in text


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    nothing = audit("--data", str(tmp_path))
    assert nothing.exit_code == 2 and "no authority.db" in nothing.stderr
    assert not (tmp_path / "authority.db").exists()  # looking did not create one
    assert audit().exit_code == 2
    assert audit("--data", str(tmp_path), "--database-url", "sqlite:///x.db").exit_code == 2
    sql(tmp_path / "authority.db", "CREATE TABLE unrelated (x INTEGER)")
    foreign = audit("--data", str(tmp_path))
    assert foreign.exit_code == 2 and "no audit log" in foreign.stderr


@pytest.mark.postgres
def test_postgresql_ledgers_are_checked_by_url(postgres_url: str) -> None:
    write_rows(postgres_url)
    assert audit("--database-url", postgres_url).exit_code == 0
    database = open_ledger_database(postgres_url)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE vf_audit_log SET token_id = %s WHERE seq = 2", (TOKENS[0],))
    database.dispose()
    code, body = report("--database-url", postgres_url)
    assert code == 1 and (body["first_bad_row"], body["problem"]) == (2, "altered")
