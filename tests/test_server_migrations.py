"""Alembic migrations of both databases, on SQLite and PostgreSQL: a database made by veilface 0.1 is adopted
with its rows, a fresh one gets the head revision and exactly the tables the code declares, concurrent
upgrades apply once, and with VEILFACE_AUTO_MIGRATE off a service refuses a database that is behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import server_fixtures as sf
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from veilface.cli.database import db_app
from veilface.crypto import ConfigurationError, Outcome, Purpose
from veilface.server.authority import create_authority_app
from veilface.server.authority.ledger import (
    Budgets,
    ChainCheck,
    DecisionLedger,
    key_usage,
    open_ledger_database,
    verify_chain,
)
from veilface.server.database import Database
from veilface.server.matcher import create_matcher_app
from veilface.server.matcher.store import TemplateStore, open_template_database
from veilface.server.migrations import (
    alembic_config,
    prepare_schema,
    schema_status,
    upgrade_schema,
    version_table,
)

HEAD = "0002"
# Every revision, oldest first: what an empty database or one made by veilface 0.1 is taken through.
REVISIONS = ["0001", "0002"]
# The tables revisions after 0001 add (0.1 had none of them).
ADDED_TABLES = {"matcher": {"vf_consumed_probes"}, "authority": {"vf_signed_probes"}}
# What veilface 0.1's Database.create_schema() executed (recorded from it): create_all's DDL, then the schema
# version row. The DDL of SQLite and PostgreSQL differs in two places, {blob} and {serial}.
RELEASE_0_1 = {
    "matcher": [
        "CREATE TABLE vf_templates (subject_id VARCHAR(128) NOT NULL, key_id VARCHAR(64) NOT NULL, "
        "model_id VARCHAR(128) NOT NULL, template {blob} NOT NULL, created_at VARCHAR(32) NOT NULL, "
        "updated_at VARCHAR(32) NOT NULL, PRIMARY KEY (subject_id))",
        "CREATE TABLE vf_matcher_schema (id {serial} NOT NULL, version INTEGER NOT NULL, "
        "component VARCHAR(32) NOT NULL, PRIMARY KEY (id))",
        "INSERT INTO vf_matcher_schema (id, version, component) VALUES (1, 1, 'matcher')",
    ],
    "authority": [
        "CREATE TABLE vf_audit_log (seq BIGINT NOT NULL, at_ms BIGINT NOT NULL, request_id VARCHAR(64) NOT NULL, "
        "key_id VARCHAR(64) NOT NULL, token_id VARCHAR(64) NOT NULL, subject_ref VARCHAR(64) NOT NULL, "
        "purpose VARCHAR(16) NOT NULL, outcome VARCHAR(32) NOT NULL, granted BOOLEAN NOT NULL, "
        "prev_hash VARCHAR(64) NOT NULL, row_hash VARCHAR(64) NOT NULL, PRIMARY KEY (seq), UNIQUE (request_id))",
        "CREATE INDEX ix_vf_audit_token ON vf_audit_log (token_id, granted, at_ms)",
        "CREATE INDEX ix_vf_audit_granted ON vf_audit_log (granted, at_ms)",
        "CREATE INDEX ix_vf_audit_subject ON vf_audit_log (subject_ref, granted, at_ms)",
        "CREATE TABLE vf_key_usage (key_id VARCHAR(64) NOT NULL, decisions BIGINT NOT NULL, PRIMARY KEY (key_id))",
        "CREATE TABLE vf_authority_schema (id {serial} NOT NULL, version INTEGER NOT NULL, "
        "component VARCHAR(32) NOT NULL, PRIMARY KEY (id))",
        "INSERT INTO vf_authority_schema (id, version, component) VALUES (1, 1, 'authority')",
    ],
}
DIALECT_TYPES = {"sqlite": {"blob": "BLOB", "serial": "INTEGER"}, "postgresql": {"blob": "BYTEA", "serial": "SERIAL"}}
BUDGETS = Budgets(
    per_subject=100, subject_window_s=3600, per_token=100, token_window_s=3600, global_per_minute=100, per_key=100
)


def open_database(service: str, url: str) -> Database:
    return open_template_database(url) if service == "matcher" else open_ledger_database(url)


def make_release_0_1(service: str, url: str) -> None:
    """A database exactly as veilface 0.1 left it: its tables and version row, no Alembic version table."""
    database = open_database(service, url)
    with database.transaction() as conn:
        for statement in RELEASE_0_1[service]:
            conn.exec_driver_sql(statement.format(**DIALECT_TYPES[database.dialect]))
    database.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {name for name in inspect(engine).get_table_names() if name.startswith("vf_")}
    finally:
        engine.dispose()


def schema(url: str) -> dict[str, Any]:
    """Every veilface table's columns, keys and indexes, as the database reports them."""
    engine = create_engine(url)
    inspector = inspect(engine)
    found: dict[str, Any] = {}
    for table in sorted(tables(url)):
        found[table] = {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"], column.get("default"))
                for column in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "unique": sorted(tuple(unique["column_names"]) for unique in inspector.get_unique_constraints(table)),
            "indexes": sorted(
                (str(index["name"]), tuple(map(str, index["column_names"])), bool(index["unique"]))
                for index in inspector.get_indexes(table)
            ),
        }
    engine.dispose()
    return found


def drop_all(url: str) -> None:
    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    else:
        sf.drop_veilface_tables(url)


def declared_tables_only(_object: Any, _name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Compare the code's tables only: 0.1's version table and Alembic's are not among them."""
    return not (type_ == "table" and reflected and compare_to is None)


def record(ledger: DecisionLedger, subject: str) -> None:
    ledger.record(
        request_id=os.urandom(16).hex(),
        key_id="k" * 32,
        token_id="t" * 32,
        subject_ref=subject * 64,
        purpose=Purpose.VERIFY,
        outcome=Outcome.MATCH,
    )


def test_a_matcher_database_from_release_0_1_is_adopted_with_its_templates(database_url: str) -> None:
    make_release_0_1("matcher", database_url)
    old = TemplateStore(open_template_database(database_url))
    alice = old.put("alice", key_id="k1", model_id="m1", template=b"A" * 4096, replace=False)
    old.database.dispose()

    store = TemplateStore(open_template_database(database_url))
    assert schema_status(store.database).current is None
    assert upgrade_schema(store.database) == REVISIONS
    assert schema_status(store.database).current == HEAD
    kept = store.get("alice")
    assert kept is not None and kept.meta == alice and kept.template == b"A" * 4096
    store.put("bob", key_id="k1", model_id="m1", template=b"B" * 4096, replace=False)
    assert store.get("bob") is not None
    store.database.dispose()


def test_an_authority_database_from_release_0_1_is_adopted_with_its_chain(database_url: str) -> None:
    make_release_0_1("authority", database_url)
    old = DecisionLedger(open_ledger_database(database_url), BUDGETS)
    for subject in "abc":
        record(old, subject)
    old.database.dispose()

    ledger = DecisionLedger(open_ledger_database(database_url), BUDGETS)
    assert upgrade_schema(ledger.database) == REVISIONS
    assert verify_chain(ledger.database) == ChainCheck(3, None)
    record(ledger, "d")
    assert verify_chain(ledger.database) == ChainCheck(4, None)
    with ledger.database.transaction() as conn:
        assert conn.execute(key_usage.select()).all() == [("k" * 32, 4)]
    ledger.database.dispose()


@pytest.mark.parametrize("service", ["matcher", "authority"])
def test_adopted_and_fresh_databases_have_one_schema_and_that_of_the_code(service: str, database_url: str) -> None:
    """Revision 0001 builds what 0.1 built, later ones only add tables; the head builds exactly the tables the
    code declares."""
    make_release_0_1(service, database_url)
    release_0_1 = schema(database_url)
    database = open_database(service, database_url)
    upgrade_schema(database)
    database.dispose()
    adopted = schema(database_url)
    drop_all(database_url)

    database = open_database(service, database_url)
    assert schema_status(database).current is None
    assert upgrade_schema(database) == REVISIONS
    assert schema_status(database).current == HEAD
    fresh = schema(database_url)
    assert fresh == adopted
    later = {version_table(database), *ADDED_TABLES[service]}
    assert {table: facts for table, facts in fresh.items() if table not in later} == release_0_1
    with database.transaction() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": declared_tables_only})
        assert compare_metadata(context, database.metadata) == []
    database.dispose()


def test_an_adopted_database_keeps_an_index_0_1_made_and_regains_a_lost_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'authority.db'}"
    make_release_0_1("authority", url)
    database = open_ledger_database(url)
    with database.transaction() as conn:
        conn.exec_driver_sql("DROP INDEX ix_vf_audit_granted")
    upgrade_schema(database)
    database.dispose()
    assert "ix_vf_audit_granted" in {index[0] for index in schema(url)["vf_audit_log"]["indexes"]}


def test_a_database_upgraded_by_a_newer_release_is_refused(database_url: str) -> None:
    database = open_template_database(database_url)
    upgrade_schema(database)
    with database.transaction() as conn:
        conn.execute(text(f"UPDATE {version_table(database)} SET version_num = '9999'"))
    for attempt in (schema_status, upgrade_schema):
        with pytest.raises(ConfigurationError, match="revision 9999, which this release does not know"):
            attempt(database)
    database.dispose()


@pytest.mark.parametrize(
    ("service", "change", "refusal"),
    [
        ("matcher", "UPDATE vf_matcher_schema SET version = 99", "schema version 99; this release knows up to 1"),
        ("authority", "DROP TABLE vf_key_usage", "vf_key_usage is missing.*not adopting it"),
    ],
)
def test_a_0_1_database_changed_since_is_refused_and_left_alone(
    service: str, change: str, refusal: str, database_url: str
) -> None:
    """A newer schema version in 0.1's version row, or a table gone: not adopted, and the refusal rolls back."""
    make_release_0_1(service, database_url)
    database = open_database(service, database_url)
    with database.transaction() as conn:
        conn.execute(text(change))
    before = schema(database_url)
    with pytest.raises(ConfigurationError, match=refusal):
        upgrade_schema(database)
    assert schema(database_url) == before
    database.dispose()


def test_a_downgrade_to_base_drops_the_tables_and_an_upgrade_makes_them_again(database_url: str) -> None:
    database = open_ledger_database(database_url)
    upgrade_schema(database)
    with database.migration_lock() as conn:
        command.downgrade(alembic_config(database, conn), "base")
    assert tables(database_url) == {version_table(database)}
    assert upgrade_schema(database) == REVISIONS
    database.dispose()


def test_revision_0002_adds_the_probe_tables_and_its_downgrade_drops_only_them(database_url: str) -> None:
    """A database at 0001 with a template and audit rows: 0002 adds the consumed and signed probe tables and
    keeps every row; going back to 0001 drops just those tables."""
    stores = {service: open_database(service, database_url) for service in ("matcher", "authority")}
    for database in stores.values():
        with database.migration_lock() as conn:
            command.upgrade(alembic_config(database, conn), "0001")
    store = TemplateStore(stores["matcher"])
    store.put("alice", key_id="k" * 32, model_id="m1", template=b"A" * 64, replace=False)
    ledger = DecisionLedger(stores["authority"], BUDGETS)
    record(ledger, "a")
    before = tables(database_url)
    assert not before & {*ADDED_TABLES["matcher"], *ADDED_TABLES["authority"]}

    for database in stores.values():
        assert upgrade_schema(database) == ["0002"]
    assert tables(database_url) == before | ADDED_TABLES["matcher"] | ADDED_TABLES["authority"]
    assert store.consume_probe("k" * 32, "ab" * 32) and store.probe_consumed("k" * 32, "ab" * 32)
    assert (kept := store.get("alice")) is not None and kept.template == b"A" * 64
    assert verify_chain(ledger.database) == ChainCheck(1, None)

    for database in stores.values():
        with database.migration_lock() as conn:
            command.downgrade(alembic_config(database, conn), "0001")
        assert schema_status(database).current == "0001"
    assert tables(database_url) == before
    assert store.get("alice") is not None and verify_chain(ledger.database) == ChainCheck(1, None)
    for database in stores.values():
        database.dispose()


# A process that opens the database, says so, upgrades it and prints the revisions it applied.
UPGRADE = """
import json, sys
from veilface.server.authority.ledger import open_ledger_database
from veilface.server.matcher.store import open_template_database
from veilface.server.migrations import upgrade_schema
service, url = sys.argv[1:]
database = (open_template_database if service == "matcher" else open_ledger_database)(url)
print("upgrading", flush=True)
print(json.dumps(upgrade_schema(database)), flush=True)
"""


@pytest.mark.parametrize("service", ["matcher", "authority"])
def test_concurrent_upgrades_in_two_processes_both_succeed_and_apply_once(service: str, database_url: str) -> None:
    """Two processes wait for the migration lock that this one holds, then race for it: one applies the
    revision, the other finds it applied (a second CREATE TABLE would fail)."""
    database = open_database(service, database_url)
    with database.migration_lock():
        children = [
            subprocess.Popen([sys.executable, "-c", UPGRADE, service, database_url], stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "upgrading\n"
        time.sleep(1.0)
        assert [child.poll() for child in children] == [None, None], "an upgrade ran while the lock was held"
    outcomes = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert sorted(json.loads(stdout) for stdout, _ in outcomes) == [[], REVISIONS]
    assert schema_status(database).current == HEAD
    database.dispose()


def test_with_auto_migrate_off_an_old_database_is_refused_with_the_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'matcher.db'}"
    make_release_0_1("matcher", url)
    database = open_template_database(url)
    with pytest.raises(ConfigurationError) as refused:
        prepare_schema(database, auto_migrate=False, data_dir=tmp_path)
    assert "VEILFACE_AUTO_MIGRATE is off" in refused.value.message
    assert refused.value.message.endswith(f"run `veilface db upgrade --service matcher --data {tmp_path}`")
    with pytest.raises(ConfigurationError, match="with the same VEILFACE_MATCHER_DATABASE_URL"):
        prepare_schema(database, auto_migrate=False, data_dir=None)
    assert schema_status(database).current is None  # untouched
    assert prepare_schema(database, auto_migrate=True, data_dir=tmp_path).up_to_date
    assert prepare_schema(database, auto_migrate=False, data_dir=tmp_path).current == HEAD
    database.dispose()


def test_the_service_factories_upgrade_before_any_worker_or_refuse(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path
) -> None:
    """Building the app (in the parent, before uvicorn and the HE workers) upgrades; with auto-migrate off it
    refuses a fresh database as well as an old one."""
    create_authority_app(sf.authority_settings(keys_dir, tmp_path / "authority"))
    assert schema_status(open_ledger_database(f"sqlite:///{tmp_path / 'authority' / 'authority.db'}")).up_to_date
    settings = sf.matcher_settings(matcher_keys_dir, tmp_path / "matcher", auto_migrate=False)
    with pytest.raises(ConfigurationError, match=r"has no revision .* run `veilface db upgrade --service matcher"):
        create_matcher_app(settings)
    assert tables(f"sqlite:///{tmp_path / 'matcher' / 'matcher.db'}") == set()


def test_serve_refuses_an_old_database_with_one_error_line(matcher_keys_dir: Path, tmp_path: Path) -> None:
    make_release_0_1("matcher", f"sqlite:///{tmp_path / 'matcher.db'}")
    env = {
        **os.environ,
        "VEILFACE_AUTO_MIGRATE": "false",
        "VEILFACE_OPERATOR_TOKENS": sf.OPERATOR_TOKENS,
        "VEILFACE_AUTHORITY_TOKEN": sf.AUTHORITY_TOKEN,
        "VEILFACE_ENVIRONMENT": "development",
    }
    env.pop("VEILFACE_MATCHER_DATABASE_URL", None)
    serve = [sys.executable, "-m", "veilface.cli", "serve", "matcher", "--keys", str(matcher_keys_dir), "--data"]
    done = subprocess.run([*serve, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        "Error: the matcher database has no revision (it is empty or predates migrations); this release needs "
        f"revision {HEAD} and VEILFACE_AUTO_MIGRATE is off; run `veilface db upgrade --service matcher --data "
        f"{tmp_path}`"
    ]


def test_veilface_db_upgrade_and_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VEILFACE_MATCHER_DATABASE_URL", "VEILFACE_MATCHER_DATA_DIR", "VEILFACE_AUTHORITY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    data = tmp_path / "matcher"
    make_release_0_1("matcher", f"sqlite:///{data / 'matcher.db'}")
    where = f"matcher database sqlite:///{data / 'matcher.db'}"

    behind = runner.invoke(db_app, ["current", "--service", "matcher", "--data", str(data)])
    assert behind.exit_code == 1, behind.output
    assert behind.stdout.strip().endswith(f"run `veilface db upgrade --service matcher --data {data}`")
    upgraded = runner.invoke(db_app, ["upgrade", "--service", "matcher", "--data", str(data)])
    assert upgraded.exit_code == 0 and upgraded.stdout == f"{where}: upgraded to revision {HEAD}\n"
    again = runner.invoke(db_app, ["upgrade", "--service", "matcher", "--data", str(data), "--json"])
    assert again.exit_code == 0
    assert json.loads(again.stdout) == {
        "service": "matcher",
        "database": f"sqlite:///{data / 'matcher.db'}",
        "revision": HEAD,
        "applied": [],
    }
    current = runner.invoke(db_app, ["current", "--service", "matcher", "--data", str(data)])
    assert current.exit_code == 0 and current.stdout == f"{where}: at revision {HEAD}, this release's\n"

    url = f"sqlite:///{tmp_path / 'elsewhere' / 'authority.db'}"
    monkeypatch.setenv("VEILFACE_AUTHORITY_DATABASE_URL", url)  # as the service would read it
    fresh = runner.invoke(db_app, ["upgrade", "--service", "authority", "--json"])
    assert fresh.exit_code == 0 and json.loads(fresh.stdout)["applied"] == REVISIONS
    assert schema_status(open_ledger_database(url)).up_to_date


def test_veilface_db_reports_refusals_and_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'matcher.db'}"
    both = runner.invoke(db_app, ["upgrade", "--service", "matcher", "--data", str(tmp_path), "--database-url", url])
    assert both.exit_code == 2 and both.stderr == "Error: give --data DIR or --database-url URL, not both\n"
    unusable = runner.invoke(db_app, ["upgrade", "--service", "matcher", "--database-url", "mysql://x/y"])
    assert unusable.exit_code == 2 and unusable.stderr.startswith("Error: database backend 'mysql'")
    nowhere = runner.invoke(db_app, ["current", "--service", "matcher", "--data", str(tmp_path / "nowhere")])
    assert nowhere.exit_code == 2
    assert nowhere.stderr == f"Error: there is no matcher database at {tmp_path / 'nowhere' / 'matcher.db'}\n"
    assert not (tmp_path / "nowhere").exists()
    make_release_0_1("matcher", url)
    database = open_template_database(url)
    with database.transaction() as conn:
        conn.execute(text("UPDATE vf_matcher_schema SET version = 99"))
    database.dispose()
    newer = runner.invoke(db_app, ["upgrade", "--service", "matcher", "--database-url", url])
    assert newer.exit_code == 3
    assert newer.stderr == (
        "Error: the matcher database has schema version 99; this release knows up to 1 (upgrade veilface)\n"
    )
    unreachable = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    down = runner.invoke(db_app, ["current", "--service", "authority", "--database-url", unreachable])
    assert down.exit_code == 3 and "could not be read" in down.stderr and "secret" not in down.output
