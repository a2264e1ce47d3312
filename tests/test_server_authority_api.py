"""The authority's HTTP API in-process (plaintext stand-in): auth, decisions, budgets, replay, audit chain."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import server_fixtures as sf
from server_fixtures import AUTHORITY_TOKEN, DIMENSION, MODEL_ID, InProcess, auth, in_process, unit
from sqlalchemy import select, update

import veilface.crypto as vc
from veilface.server.authority.ledger import (
    Budgets,
    DecisionLedger,
    ReplayedProbeError,
    audit_entries,
    audit_log,
    open_ledger_database,
    signed_probes,
    verify_chain,
)
from veilface.server.database import Database
from veilface.server.keystore import read_public_description, read_verify_key
from veilface.server.migrations import upgrade_schema
from veilface.server.settings import token_id

pytestmark = pytest.mark.anyio

TOKEN_ID = token_id("some-operator-token")
NONCE = "nonce-0123456789abcdef"


def matcher_cipher(keys_dir: Path) -> vc.PlaintextMatcherCipher:
    key_id = read_public_description(keys_dir)[0].key_id
    return vc.PlaintextMatcherCipher(key_id=key_id, model_id=MODEL_ID, dimension=DIMENSION)


def client_cipher(keys_dir: Path) -> vc.PlaintextClientCipher:
    key_id = read_public_description(keys_dir)[0].key_id
    return vc.PlaintextClientCipher(key_id=key_id, model_id=MODEL_ID, dimension=DIMENSION)


def ledger_at(data: Path) -> Database:
    return open_ledger_database(f"sqlite:///{data / 'authority.db'}")


def headers(
    subject: str = "a" * 64, *, verify: bool = True, request_id: str | None = None, probe: str | None = None
) -> dict[str, str]:
    """A decision request's headers; a verification's probe hash is fresh unless given (the authority signs
    for a probe hash once)."""
    values = {
        **auth(AUTHORITY_TOKEN),
        "Content-Type": "application/octet-stream",
        "X-Request-Id": request_id or secrets.token_hex(16),
        "X-Subject-Ref": subject,
        "X-Token-Id": TOKEN_ID,
    }
    if verify:
        values |= {"X-Client-Nonce": NONCE, "X-Probe-Sha256": probe or secrets.token_hex(32)}
    return values


def blinded_verify(keys_dir: Path, score_match: bool = True) -> bytes:
    rng = np.random.default_rng(1)
    client = client_cipher(keys_dir)
    face = unit(rng)
    probe = face if score_match else unit(rng)
    return matcher_cipher(keys_dir).compare(client.encrypt(face), client.encrypt(probe), sf.THRESHOLD)


async def decide(s: InProcess, body: bytes, **kwargs: Any) -> httpx.Response:
    return await s.authority.post("/v1/decisions", content=body, headers=headers(**kwargs))


def problem_slug(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def test_health_needs_no_token_everything_else_does(services: InProcess) -> None:
    assert (await services.authority.get("/healthz")).status_code == 200
    assert (await services.authority.get("/readyz")).json() == {"database": True}
    for method, path in (("POST", "/v1/decisions"), ("GET", "/v1/keys/signing"), ("GET", "/metrics")):
        for token in (None, "wrong-token", sf.ADMIN_TOKEN):
            response = await services.authority.request(method, path, headers=auth(token) if token else {})
            assert response.status_code == 401 and problem_slug(response) == "unauthorized"


async def test_signing_key_is_served_as_pem(services: InProcess, keys_dir: Path) -> None:
    response = await services.authority.get("/v1/keys/signing", headers=auth(AUTHORITY_TOKEN))
    assert response.status_code == 200
    assert response.content == (keys_dir / "public" / "signing.pub").read_bytes()


async def test_decisions_are_signed_bits(services: InProcess, keys_dir: Path) -> None:
    verify_key = read_verify_key(keys_dir / "public" / "signing.pub")
    for matching in (True, False):
        probe = secrets.token_hex(32)
        response = await decide(services, blinded_verify(keys_dir, matching), probe=probe)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["purpose"] == "verify" and body["outcome"] == ("match" if matching else "no_match")
        record = vc.DecisionRecord.from_dict(body["record"])
        vc.verify_decision(record, verify_key, client_nonce=NONCE, probe_sha256=probe)
        assert record.match is matching and record.subject_ref == "a" * 64 and record.subject_id == ""

    enrolment = matcher_cipher(keys_dir).blind_norm(client_cipher(keys_dir).encrypt(unit(np.random.default_rng(2))))
    body = (await decide(services, enrolment, verify=False)).json()
    assert (body["purpose"], body["outcome"], body["record"]) == ("enrol", "normalised", None)


async def test_replayed_request_ids_are_refused(services: InProcess, keys_dir: Path) -> None:
    request_id = secrets.token_hex(16)
    assert (await decide(services, blinded_verify(keys_dir), request_id=request_id)).status_code == 200
    replay = await decide(services, blinded_verify(keys_dir), request_id=request_id)
    assert replay.status_code == 409 and problem_slug(replay) == "replayed-request"


async def test_a_probe_hash_is_signed_for_once_per_key(keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path) -> None:
    """What a faulty matcher would send twice: the same probe hash under fresh request ids and nonces. The
    first gets a signed record, the second 409 replayed-probe, audited as a refusal that spends no budget.
    A decision that is not signed (an unnormalised probe, a budget refusal) does not spend the hash."""
    async with in_process(keys_dir, matcher_keys_dir, tmp_path, authority={"budget_per_subject": 1}) as s:
        probe = secrets.token_hex(32)
        unnormalised = matcher_cipher(keys_dir).compare(
            client_cipher(keys_dir).encrypt(unit(np.random.default_rng(4))),
            sf.unnormalised_plain(client_cipher(keys_dir), 1.2 * unit(np.random.default_rng(5))),
            sf.THRESHOLD,
        )
        refused = await decide(s, unnormalised, probe=probe, subject="e" * 64)
        assert refused.status_code == 200 and refused.json()["outcome"] == "not_normalised"
        assert (await decide(s, blinded_verify(keys_dir), probe=probe, subject="d" * 64)).status_code == 200
        spent = await decide(s, blinded_verify(keys_dir), probe=probe, subject="f" * 64)
        assert spent.status_code == 409 and problem_slug(spent) == "replayed-probe"
        assert spent.json()["detail"] == "a decision was signed for this probe before"
        # The subject's budget of 1 is spent: refused there, the hash stays unspent and is signed elsewhere.
        other = secrets.token_hex(32)
        assert (await decide(s, blinded_verify(keys_dir), probe=other, subject="d" * 64)).status_code == 429
        assert (await decide(s, blinded_verify(keys_dir), probe=other, subject="f" * 64)).status_code == 200
        text = (await s.authority.get("/metrics", headers=auth(AUTHORITY_TOKEN))).text
        ledger = ledger_at(s.authority_data)
        outcomes = [(entry.outcome, entry.granted) for entry in audit_entries(ledger)]
        assert verify_chain(ledger).first_bad_seq is None
        ledger.dispose()
    assert outcomes == [
        ("not_normalised", True),
        ("match", True),
        ("refused-replayed-probe", False),
        ("refused-subject", False),
        ("match", True),
    ]
    assert 'veilface_decisions_total{outcome="refused-replayed-probe",purpose="verify"} 1.0' in text


def test_the_ledger_keeps_signed_probe_hashes_per_key(tmp_path: Path) -> None:
    """The same hash under another key is another probe (a renewal's two authorities may share a database)."""
    budgets = Budgets(
        per_subject=10, subject_window_s=60, per_token=10, token_window_s=60, global_per_minute=10, per_key=10
    )
    ledger = DecisionLedger(open_ledger_database(f"sqlite:///{tmp_path / 'authority.db'}"), budgets)
    upgrade_schema(ledger.database)
    probe = secrets.token_hex(32)

    def record(key_id: str) -> None:
        ledger.record(
            request_id=secrets.token_hex(16),
            key_id=key_id,
            token_id=TOKEN_ID,
            subject_ref=secrets.token_hex(32),
            purpose=vc.Purpose.VERIFY,
            outcome=vc.Outcome.MATCH,
            signed_probe=probe,
        )

    record("1" * 32)
    record("2" * 32)
    with pytest.raises(ReplayedProbeError):
        record("1" * 32)
    with ledger.database.transaction() as conn:
        rows = conn.execute(select(signed_probes)).all()
    assert sorted(rows) == [("1" * 32, bytes.fromhex(probe)), ("2" * 32, bytes.fromhex(probe))]
    ledger.database.dispose()


@pytest.mark.parametrize(
    ("change", "status", "slug"),
    [
        ({"X-Request-Id": "short"}, 422, "invalid-request"),
        ({"X-Subject-Ref": "not-hex"}, 422, "invalid-request"),
        ({"X-Token-Id": "x"}, 422, "invalid-request"),
        ({"X-Client-Nonce": "bad nonce!"}, 422, "invalid-request"),
        ({"X-Probe-Sha256": "00"}, 422, "invalid-request"),
        ({"Content-Type": "application/json"}, 415, "unsupported-media-type"),
    ],
)
async def test_malformed_requests_are_refused(
    services: InProcess, keys_dir: Path, change: dict[str, str], status: int, slug: str
) -> None:
    response = await services.authority.post(
        "/v1/decisions", content=blinded_verify(keys_dir), headers=headers() | change
    )
    assert response.status_code == status and problem_slug(response) == slug


async def test_bodies_that_are_not_blinded_results_are_refused(services: InProcess, keys_dir: Path) -> None:
    too_big = b"\0" * (3 * 8 + 8 + 1024 + 1)
    response = await decide(services, too_big)
    assert response.status_code == 413 and problem_slug(response) == "payload-too-large"
    for body in (b"garbage", client_cipher(keys_dir).encrypt(unit(np.random.default_rng(3)))[:64]):
        response = await decide(services, body)
        assert response.status_code == 422 and problem_slug(response) == "invalid-ciphertext"


@pytest.mark.parametrize(
    ("budgets", "vary", "budget"),
    [
        ({"budget_per_subject": 2}, "token", "subject"),
        ({"budget_per_token": 2}, "subject", "token"),
        ({"budget_global_per_minute": 2}, "subject", "global"),
        ({"budget_per_key": 2}, "subject", "key"),
    ],
)
async def test_each_budget_refuses_when_exhausted(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path, budgets: dict[str, int], vary: str, budget: str
) -> None:
    """Two decisions pass, the third is refused by exactly the named budget, and the refusal is audited."""
    async with in_process(keys_dir, matcher_keys_dir, tmp_path, authority=budgets) as s:
        for number in range(3):
            request = headers(subject=f"{number:064x}" if vary == "subject" else "c" * 64)
            if vary == "token":
                request["X-Token-Id"] = f"{number:032x}"
            response = await s.authority.post("/v1/decisions", content=blinded_verify(keys_dir), headers=request)
            if number < 2:
                assert response.status_code == 200, response.text
        assert response.status_code == 429 and problem_slug(response) == "budget-exhausted"
        assert f"the {budget} decision budget" in response.json()["detail"]
        assert ("retry-after" in response.headers) is (budget != "key")
        ledger = ledger_at(s.authority_data)
        outcomes = [entry.outcome for entry in audit_entries(ledger)]
        assert outcomes == ["match", "match", f"refused-{budget}"]
        assert verify_chain(ledger).first_bad_seq is None


async def test_refusals_do_not_spend_budget(keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path) -> None:
    async with in_process(keys_dir, matcher_keys_dir, tmp_path, authority={"budget_per_subject": 1}) as s:
        assert (await decide(s, blinded_verify(keys_dir), subject="d" * 64)).status_code == 200
        for _ in range(3):
            assert (await decide(s, blinded_verify(keys_dir), subject="d" * 64)).status_code == 429
        assert (await decide(s, blinded_verify(keys_dir), subject="e" * 64)).status_code == 200


async def test_audit_chain_detects_an_altered_row(services: InProcess, keys_dir: Path) -> None:
    for number in range(4):
        assert (await decide(services, blinded_verify(keys_dir, number % 2 == 0))).status_code == 200
    ledger = ledger_at(services.authority_data)
    entries = list(audit_entries(ledger))
    assert [e.seq for e in entries] == [1, 2, 3, 4] and verify_chain(ledger).first_bad_seq is None
    assert entries[1].prev_hash == entries[0].row_hash
    with ledger.transaction() as conn:
        conn.execute(
            update(audit_log)
            .where(audit_log.c.seq == 3)
            .values(outcome="no_match" if entries[2].outcome == "match" else "match")
        )
    check = verify_chain(ledger)
    assert (check.rows, check.first_bad_seq) == (3, 3)
    ledger.dispose()


async def test_metrics_count_decisions_and_refusals(keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path) -> None:
    async with in_process(keys_dir, matcher_keys_dir, tmp_path, authority={"budget_per_subject": 1}) as s:
        for _ in range(2):
            await decide(s, blinded_verify(keys_dir))
        text = (await s.authority.get("/metrics", headers=auth(AUTHORITY_TOKEN))).text
    assert 'veilface_decisions_total{outcome="match",purpose="verify"} 1.0' in text
    assert 'veilface_decisions_total{outcome="refused-subject",purpose="verify"} 1.0' in text
    assert "a" * 64 not in text and TOKEN_ID not in text


async def test_the_authority_stores_no_ciphertext(services: InProcess, keys_dir: Path) -> None:
    blinded = blinded_verify(keys_dir)
    assert (await decide(services, blinded)).status_code == 200
    payload = vc.Envelope.from_bytes(blinded, kind=vc.EnvelopeKind.BLINDED).payload
    stored = b"".join(path.read_bytes() for path in services.authority_data.iterdir() if path.is_file())
    assert payload not in stored and TOKEN_ID.encode() in stored
