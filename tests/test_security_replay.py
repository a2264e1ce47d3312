"""Replays over HTTP, against real service processes with real CKKS (docs/design.md §2.6).

A captured probe sent again under a fresh nonce gets 409 `replayed-probe`, from the stock client too; the
stock client encrypts every verification afresh, so it never meets that refusal; identical probes sent at
once get exactly one signed decision, and each service's database holds the probe's hash once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_fixtures import ADMIN_TOKEN, near, octets, unit
from sqlalchemy import func, select

import veilface.crypto as vc
from veilface.client.api import Client
from veilface.server.authority.ledger import audit_entries, open_ledger_database, signed_probes
from veilface.server.launch import start_services
from veilface.server.matcher.store import consumed_probes, open_template_database

pytestmark = pytest.mark.e2e
COPIES = 6


def rows_for(url: str, table: object, digest: bytes) -> int:
    opener = open_template_database if table is consumed_probes else open_ledger_database
    database = opener(url)
    try:
        with database.transaction() as conn:
            query = select(func.count()).select_from(table).where(table.c.probe_sha256 == digest)  # type: ignore[attr-defined]
            return int(conn.execute(query).scalar_one())
    finally:
        database.dispose()


def test_a_probe_gets_one_signed_decision_over_http(keys_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(100)
    face = unit(rng)
    data = tmp_path / "data"
    with start_services(keys_dir, data, operator_token=ADMIN_TOKEN) as services:
        signing_pub = keys_dir / "public" / "signing.pub"
        with Client(services.matcher_url, token=ADMIN_TOKEN, authority_key=signing_pub, state_dir=tmp_path) as client:
            client.enroll_embedding("wes", face)
            genuine = near(rng, face)
            for _ in range(3):  # the same embedding, encrypted afresh each time
                assert client.verify_embedding("wes", genuine).match is True
            captured = client.cipher().encrypt(genuine)
            assert client.verify_ciphertext("wes", captured).match is True
            with pytest.raises(vc.ServiceError) as replayed:
                client.verify_ciphertext("wes", captured)  # a fresh nonce, the same bytes
            assert replayed.value.status == 409 and replayed.value.problem_type.endswith("/replayed-probe")
            assert "encrypt the embedding again" in replayed.value.message

            twin = client.cipher().encrypt(near(rng, face))
        barrier = threading.Barrier(COPIES)

        def send(_: int) -> httpx.Response:
            with httpx.Client(base_url=services.matcher_url, timeout=30.0) as http:
                headers = octets(**{"X-Client-Nonce": secrets.token_urlsafe(24)})
                barrier.wait()
                return http.post("/v1/subjects/wes/verify", content=twin, headers=headers)

        with ThreadPoolExecutor(COPIES) as pool:
            answers = list(pool.map(send, range(COPIES)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [409] * (COPIES - 1), [answer.text for answer in answers]
    assert {a.json()["type"].rsplit("/", 1)[-1] for a in answers if a.status_code == 409} == {"replayed-probe"}
    winner = next(answer for answer in answers if answer.status_code == 200)
    assert winner.json()["probe_sha256"] == hashlib.sha256(twin).hexdigest()

    digest = hashlib.sha256(twin).digest()
    assert rows_for(f"sqlite:///{data / 'matcher' / 'matcher.db'}", consumed_probes, digest) == 1
    authority_url = f"sqlite:///{data / 'authority' / 'authority.db'}"
    assert rows_for(authority_url, signed_probes, digest) == 1
    ledger = open_ledger_database(authority_url)
    verifications = [entry.outcome for entry in audit_entries(ledger) if entry.purpose == "verify"]
    ledger.dispose()
    # Three fresh encryptions, the captured probe once, one of the twins; twins the authority refused are
    # audited as such (the others were refused by the matcher before any decision).
    assert verifications.count("match") == 5
    assert set(verifications) <= {"match", "refused-replayed-probe"}
