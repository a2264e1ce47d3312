"""What the operator's matcher can hold, against real service processes with real CKKS.

After enrolments, verifications and a deletion with debug logging on, nothing the matcher wrote (database
file, WAL, logs, pseudonym key, its key copies, database rows) and nothing in its memory or its workers'
holds the CKKS secret key or a plaintext embedding. A deleted template's bytes leave the SQLite files.
Unnormalised templates and probes are refused over HTTP, and a client given the wrong authority key sends
nothing with a body and encrypts nothing.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import server_fixtures as sf
from security_helpers import (
    MarkerSearch,
    RecordingTransport,
    database_values,
    distinctive_windows,
    embedding_markers,
    files_holding,
    memory_holding,
    secret_key_in_memory,
    secret_markers,
)
from server_fixtures import ADMIN_TOKEN, DIMENSION, MODEL_ID, near, unit, unnormalised_ckks

import veilface.crypto as vc
from veilface.client.api import Client, ProbeRefusedError
from veilface.protocol import PublicKeysAnswer
from veilface.server.launch import RunningServices, start_services

pytestmark = pytest.mark.e2e


def client(
    services: RunningServices,
    authority_key: Path | vc.VerifyKey,
    transport: httpx.BaseTransport | None = None,
) -> Client:
    return Client(services.matcher_url, token=ADMIN_TOKEN, authority_key=authority_key, transport=transport)


def trusted(keys_dir: Path) -> Path:
    """The authority's key as clients get it, out of band."""
    return keys_dir / "public" / "signing.pub"


def enrolled(session: Client, subject: str) -> bool:
    try:
        session.subject(subject)
    except vc.ServiceError as exc:
        assert exc.status == 404
        return False
    return True


def test_nothing_the_matcher_holds_or_writes_contains_the_secret_key_or_an_embedding(
    keyset: vc.KeySet, keys_dir: Path, tmp_path: Path, database: tuple[dict[str, str], str]
) -> None:
    env, matcher_database = database
    data = tmp_path / "data"
    rng = np.random.default_rng(60)
    alice, bob = unit(rng), unit(rng)
    alice_again = near(rng, alice)
    shared_bundles = [path for role in ("evaluation", "public") for path in (keys_dir / role).iterdir()]
    secret_file = distinctive_windows(keys_dir / "secret" / "context.bin", shared_bundles)
    assert len(secret_file) >= 10
    secret = [*secret_markers(keyset), *secret_file]
    loaded_secret = secret_key_in_memory(keyset)
    faces = [m for face in (alice, bob, alice_again) for m in embedding_markers(face)]
    with start_services(
        keys_dir, data, operator_token=ADMIN_TOKEN, env={"VEILFACE_LOG_LEVEL": "debug", **env}
    ) as services:
        with client(services, trusted(keys_dir)) as session:
            session.enroll_embedding("alice", alice)
            session.enroll_embedding("bob", bob)
            assert session.verify_embedding("alice", alice_again).match is True
            assert session.verify_embedding("alice", bob).match is False
            session.delete("alice")
        matcher_memory = memory_holding(
            services.matcher.pid, [m for m in [*secret, *loaded_secret, *faces] if len(m) >= 16]
        )
        authority_memory = memory_holding(services.authority.pid, loaded_secret)
        during = files_holding(data / "matcher", [*secret, *faces])
    assert matcher_memory == []
    assert authority_memory == loaded_secret  # the same scan finds the key where it is loaded

    matcher_files = sorted(str(p.relative_to(data)) for p in (data / "matcher").rglob("*") if p.is_file())
    assert "matcher/pseudonym.key" in matcher_files and ("matcher/matcher.db" in matcher_files) is (not env)
    assert not any("secret" in name for name in matcher_files)
    logs = (data / "matcher.log").read_text()
    assert '"level": "debug"' in logs and "/v1/subjects/{subject_id}/verify" in logs  # debug logging was on
    assert during == {}
    assert files_holding(data / "matcher", [*secret, *faces]) == {}
    assert files_holding(data / "matcher.log", [*secret, *faces]) == {}
    rows = database_values(matcher_database)
    assert b"bob" in rows and not any(marker in rows for marker in [*secret, *faces])
    # The authority never sees an embedding either.
    assert files_holding(data / "authority", faces) == {} and files_holding(data / "authority.log", faces) == {}
    # Temporary SEAL files live in private directories in /dev/shm and are removed as soon as they are read.
    assert all(files_holding(path, [*secret, *faces]) == {} for path in Path("/dev/shm").glob("veilface-seal-*"))

    # Controls: the scans find every marker where it is.
    assert files_holding(keys_dir / "secret" / "context.bin", secret_file) == {
        str(keys_dir / "secret" / "context.bin"): len(secret_file)
    }
    planted = b"".join(
        np.asarray(face, "<f8").tobytes()
        + np.asarray(face, "<f4").tobytes()
        + json.dumps(face.tolist()).encode()
        + " ".join(f"{x:.8f}" for x in face).encode()
        for face in (alice, bob, alice_again)
    )
    (tmp_path / "planted.log").write_bytes(planted)
    assert files_holding(tmp_path / "planted.log", faces) == {str(tmp_path / "planted.log"): len(faces)}
    long_markers = [m for m in faces if len(m) >= 16]
    assert MarkerSearch(long_markers).found_in(b"\0\0\0" + planted) == set(long_markers)  # at any alignment


# -- one deployment for the erasure, norm-check and trust tests -----------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path) -> Iterator[RunningServices]:
    with start_services(keys_dir, tmp_path_factory.mktemp("security-e2e"), operator_token=ADMIN_TOKEN) as services:
        yield services


def sqlite_files(services: RunningServices) -> list[Path]:
    database = services.data_dir / "matcher" / "matcher.db"
    return [path for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")) if path.exists()]


def test_a_deleted_or_replaced_template_leaves_the_database_files(deployment: RunningServices, keys_dir: Path) -> None:
    rng = np.random.default_rng(61)
    with client(deployment, trusted(keys_dir)) as session:
        cipher = session.cipher()
        first, second = cipher.encrypt(unit(rng)), cipher.encrypt(unit(rng))

        def stored(template: bytes) -> int:
            """How many of 64 windows of the template's coefficients the SQLite files hold (the first bytes are
            SEAL's header, the same in every ciphertext)."""
            payload = vc.Envelope.from_bytes(template, kind=vc.EnvelopeKind.EMBEDDING).payload
            windows = [payload[i : i + 32] for i in range(256, len(payload) - 32, len(payload) // 64)][:64]
            content = b"".join(path.read_bytes() for path in sqlite_files(deployment))
            return sum(window in content for window in windows)

        session.enroll_ciphertext("erasure", first)
        assert stored(first) >= 48  # windows that straddle a database page boundary are split
        session.enroll_ciphertext("erasure", second, replace=True)  # a re-enrolment
        assert stored(first) == 0 and stored(second) >= 48
        session.delete("erasure")
        assert stored(second) == 0 and not enrolled(session, "erasure")


def test_unnormalised_templates_and_probes_are_refused_over_http(
    deployment: RunningServices, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(62)
    face = unit(rng)
    raw = rng.normal(size=DIMENSION)  # an embedding nobody normalised (norm ~11)
    with client(deployment, trusted(keys_dir)) as session:
        cipher = session.cipher()
        assert isinstance(cipher, vc.CkksClientCipher)
        for number, bad in enumerate((1.2 * face, raw)):
            with pytest.raises(vc.ServiceError) as refused:
                session.enroll_ciphertext(f"norm-{number}", unnormalised_ckks(cipher, bad, monkeypatch))
            assert refused.value.status == 422 and refused.value.problem_type.endswith("/template-not-normalised")
            assert not enrolled(session, f"norm-{number}")
        session.enroll_embedding("norm-ok", face)
        for bad in (1.2 * face, 0.8 * face, raw):
            with pytest.raises(ProbeRefusedError) as refused:
                session.verify_ciphertext("norm-ok", unnormalised_ckks(cipher, bad, monkeypatch))
            assert refused.value.status == 422 and refused.value.problem_type.endswith("/probe-not-normalised")
        assert session.verify_embedding("norm-ok", near(rng, face)).match is True


def requests_with_bodies(services: RunningServices) -> float:
    """PUT and POST requests the matcher has counted (its own metrics), whatever their outcome."""
    text = httpx.get(services.matcher_url + "/metrics", headers=sf.auth(), timeout=10.0).text
    pattern = r'^veilface_http_requests_total\{method="(?:PUT|POST)",[^}]*\} ([0-9.e+]+)$'
    return sum(float(value) for value in re.findall(pattern, text, flags=re.MULTILINE))


def test_a_client_given_the_wrong_authority_key_encrypts_nothing(
    deployment: RunningServices, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encryptions: list[object] = []
    real_encrypt = vc.CkksClientCipher.encrypt
    monkeypatch.setattr(vc.CkksClientCipher, "encrypt", lambda self, e: encryptions.append(e) or real_encrypt(self, e))
    face = unit(np.random.default_rng(63))
    before = requests_with_bodies(deployment)
    link = RecordingTransport(httpx.HTTPTransport())
    stranger = vc.SigningKey.generate().verify_key
    with client(deployment, stranger, link) as session:
        with pytest.raises(vc.SignatureError):
            session.enroll_embedding("anchor", face)
        with pytest.raises(vc.SignatureError):
            session.verify_embedding("anchor", face)
    assert link.sent == [("GET", "/v1/keys/public", 0)] * 2
    assert encryptions == [] and requests_with_bodies(deployment) == before
    with client(deployment, trusted(keys_dir), link) as session:  # the same, given the right key
        session.enroll_embedding("anchor", face)
    method, path, size = link.sent[-1]
    assert len(encryptions) == 1 and (method, path) == ("PUT", "/v1/subjects/anchor/template") and size > 0


def published(keyset: vc.KeySet, **changes: object) -> dict[str, object]:
    """A /v1/keys/public answer for ``keyset``, with fields replaced by ``changes``."""
    body: dict[str, object] = PublicKeysAnswer.of(keyset.public, keyset.description, keyset.signature).model_dump()
    return body | changes


def verify_is_refused(keyset: vc.KeySet, matcher: Callable[[httpx.Request], httpx.Response], *, seed: int) -> None:
    """A client trusting ``keyset``'s authority, answered by ``matcher``, refuses to verify a face against it."""
    with Client(
        "http://matcher.invalid",
        token=ADMIN_TOKEN,
        authority_key=keyset.signing_key.verify_key,
        transport=httpx.MockTransport(matcher),
    ) as session:
        with pytest.raises(vc.SignatureError):
            session.verify_embedding("victim", unit(np.random.default_rng(seed)))


@pytest.fixture(scope="module")
def impostor_keys() -> vc.KeySet:
    """A dishonest matcher's own key ceremony: it holds this secret key."""
    return vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL_ID, dimension=DIMENSION)


@pytest.mark.parametrize("substitution", ["own-keys-own-signature", "own-bundle-real-signature", "altered-description"])
def test_a_dishonest_matcher_cannot_substitute_its_own_public_key(
    keyset: vc.KeySet, impostor_keys: vc.KeySet, substitution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    encryptions: list[object] = []
    monkeypatch.setattr(vc.CkksClientCipher, "encrypt", lambda self, e: encryptions.append(e))
    answers = {
        "own-keys-own-signature": published(impostor_keys),
        "own-bundle-real-signature": published(keyset, bundle=base64.b64encode(impostor_keys.public.context).decode()),
        "altered-description": published(keyset, description={**keyset.description.to_dict(), "dimension": 512}),
    }
    sent: list[tuple[str, str, int]] = []

    def dishonest(request: httpx.Request) -> httpx.Response:
        sent.append((request.method, request.url.path, len(request.read())))
        if request.url.path == "/v1/keys/public":
            return httpx.Response(200, json=answers[substitution])
        return httpx.Response(500)

    verify_is_refused(keyset, dishonest, seed=64)
    assert sent == [("GET", "/v1/keys/public", 0)] and encryptions == []


def test_a_decision_replayed_by_the_matcher_is_refused(keyset: vc.KeySet, monkeypatch: pytest.MonkeyPatch) -> None:
    """A genuine signed decision, answered to a later request, fails the client's nonce and probe checks."""
    old = vc.sign_decision(
        keyset.signing_key,
        request_id="r" * 32,
        subject_ref="s" * 64,
        match=True,
        key_id=keyset.key_id,
        client_nonce="an-earlier-nonce-0123456789",
        probe_sha256="p" * 64,
    ).with_subject("victim")

    def replaying(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/keys/public":
            return httpx.Response(200, json=published(keyset))
        return httpx.Response(200, json=old.to_dict())

    verify_is_refused(keyset, replaying, seed=65)
