"""The services with the real CKKS ciphers (run inline, in-process): decisions agree with plaintext cosine."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_fixtures import DIMENSION, MODEL_ID, THRESHOLD, InProcess, in_process, near, octets, unit, unnormalised_ckks

import veilface.crypto as vc
from veilface.server.matcher.store import TemplateStore, open_template_database

pytestmark = pytest.mark.anyio
NONCE = "ckks-nonce-0123456789"


@pytest.fixture
async def ckks(keyset: vc.KeySet, keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path) -> InProcess:  # type: ignore[misc]
    async with in_process(keys_dir, matcher_keys_dir, tmp_path, ckks=keyset) as running:
        yield running


async def put(s: InProcess, subject: str, template: bytes) -> httpx.Response:
    return await s.matcher.put(f"/v1/subjects/{subject}/template", content=template, headers=octets())


async def post(s: InProcess, subject: str, probe: bytes) -> httpx.Response:
    headers = octets(**{"X-Client-Nonce": NONCE})
    return await s.matcher.post(f"/v1/subjects/{subject}/verify", content=probe, headers=headers)


def slug(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def test_genuine_and_impostor_decisions_follow_the_cosine(ckks: InProcess) -> None:
    rng = np.random.default_rng(20)
    face = unit(rng)
    assert (await put(ckks, "alice", ckks.client_cipher.encrypt(face))).status_code == 201
    genuine, impostor = near(rng, face), unit(rng)
    for probe_vector in (genuine, impostor, face):
        response = await post(ckks, "alice", ckks.client_cipher.encrypt(probe_vector))
        assert response.status_code == 200, response.text
        assert response.json()["match"] is bool(face @ probe_vector > THRESHOLD)


async def test_scaled_and_unnormalised_ciphertexts_are_refused(
    ckks: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(21)
    face = unit(rng)
    assert isinstance(ckks.client_cipher, vc.CkksClientCipher)
    scaled = unnormalised_ckks(ckks.client_cipher, 1.2 * face, monkeypatch)
    refused = await put(ckks, "bob", scaled)
    assert refused.status_code == 422 and slug(refused) == "template-not-normalised"
    assert (await put(ckks, "bob", ckks.client_cipher.encrypt(face))).status_code == 201
    for vector in (1.2 * face, 0.8 * face, 5.0 * rng.normal(size=DIMENSION)):
        response = await post(ckks, "bob", unnormalised_ckks(ckks.client_cipher, vector, monkeypatch))
        assert response.status_code == 422 and slug(response) == "probe-not-normalised"


async def test_foreign_ciphertexts_are_refused(ckks: InProcess) -> None:
    rng = np.random.default_rng(22)
    other_keys = vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL_ID, dimension=DIMENSION)
    other_key = vc.CkksClientCipher(other_keys.public, model_id=MODEL_ID, dimension=DIMENSION).encrypt(unit(rng))
    plaintext = vc.PlaintextClientCipher(key_id=other_keys.key_id, model_id=MODEL_ID, dimension=DIMENSION)
    for body in (other_key, plaintext.encrypt(unit(rng)), ckks.client_cipher.encrypt(unit(rng))[:-7]):
        response = await put(ckks, "carol", body)
        assert response.status_code == 422 and slug(response) == "invalid-ciphertext"


async def test_the_largest_valid_envelope_fits_the_size_limit(ckks: InProcess) -> None:
    """An envelope with the largest header crypto parses (1024 bytes) fits the limit (and its unknown field
    is refused by the envelope check, 422); one byte more is 413 before any parsing."""
    template = ckks.client_cipher.encrypt(unit(np.random.default_rng(23)))
    envelope = vc.Envelope.from_bytes(template, kind=vc.EnvelopeKind.EMBEDDING)
    header_bytes = len(json.dumps(envelope.header, sort_keys=True, separators=(",", ":")))
    padding = "x" * (1024 - header_bytes - len(',"padding":""'))
    largest = vc.Envelope(envelope.kind, {**envelope.header, "padding": padding}, envelope.payload).to_bytes()
    assert len(largest) - len(envelope.payload) == 8 + 1024
    padded = await put(ckks, "dave", largest)
    assert padded.status_code == 422 and slug(padded) == "invalid-ciphertext"
    too_large = await put(ckks, "dave2", largest + b"\0")
    assert too_large.status_code == 413 and slug(too_large) == "payload-too-large"


async def test_templates_under_a_retired_key_ask_for_reenrolment(ckks: InProcess) -> None:
    store = TemplateStore(open_template_database(f"sqlite:///{ckks.matcher_data / 'matcher.db'}"))
    template = ckks.client_cipher.encrypt(unit(np.random.default_rng(24)))
    store.put("erin", key_id="0" * 32, model_id=MODEL_ID, template=template, replace=False)
    store.database.dispose()
    response = await post(ckks, "erin", template)
    assert response.status_code == 422 and slug(response) == "reenrolment-required"
