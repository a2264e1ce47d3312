"""The matcher's HTTP API in-process (ASGI), with the plaintext stand-in: every endpoint and every error."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from server_fixtures import (
    ADMIN_TOKEN,
    DIMENSION,
    ENROLL_TOKEN,
    MODEL_ID,
    VERIFY_TOKEN,
    InProcess,
    auth,
    authority_settings,
    in_process,
    lifespan,
    near,
    octets,
    unit,
    unnormalised_plain,
)

import veilface.crypto as vc
from veilface.protocol import headers
from veilface.server.authority.ledger import DecisionLedger, audit_entries, open_ledger_database
from veilface.server.keystore import read_verify_key
from veilface.server.matcher.authority_client import AuthorityClient
from veilface.server.matcher.store import TemplateStore
from veilface.server.standin import plaintext_authority_app

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
NONCE = "nonce-0123456789abcdef"


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status and body["type"].endswith("/" + slug), body
    return body


async def enrol(s: InProcess, subject: str, vector: np.ndarray, token: str = ADMIN_TOKEN) -> httpx.Response:
    template = s.client_cipher.encrypt(vector)
    return await s.matcher.put(f"/v1/subjects/{subject}/template", content=template, headers=octets(token))


async def verify(s: InProcess, subject: str, probe: bytes, token: str = ADMIN_TOKEN) -> httpx.Response:
    headers = octets(token, **{"X-Client-Nonce": NONCE})
    return await s.matcher.post(f"/v1/subjects/{subject}/verify", content=probe, headers=headers)


async def test_health_and_readiness_need_no_token(services: InProcess) -> None:
    assert (await services.matcher.get("/healthz")).json() == {"status": "ok"}
    ready = await services.matcher.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"database": True, "authority": True}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/keys/public"),
        ("PUT", "/v1/subjects/alice/template"),
        ("POST", "/v1/subjects/alice/verify"),
        ("GET", "/v1/subjects/alice"),
        ("DELETE", "/v1/subjects/alice"),
        ("GET", "/metrics"),
    ],
)
@pytest.mark.parametrize("headers", [{}, auth("not-a-token-of-this-matcher"), {"Authorization": "Basic abc"}])
async def test_every_other_endpoint_needs_a_valid_token(
    services: InProcess, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await services.matcher.request(method, path, headers=headers, content=b"x")
    problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("token", "method", "path", "params"),
    [
        (VERIFY_TOKEN, "PUT", "/v1/subjects/alice/template", {}),
        (ENROLL_TOKEN, "PUT", "/v1/subjects/alice/template", {"replace": "true"}),
        (ENROLL_TOKEN, "POST", "/v1/subjects/alice/verify", {}),
        (ENROLL_TOKEN, "DELETE", "/v1/subjects/alice", {}),
        (VERIFY_TOKEN, "DELETE", "/v1/subjects/alice", {}),
        (ENROLL_TOKEN, "GET", "/v1/subjects/alice", {}),
        (VERIFY_TOKEN, "GET", "/v1/subjects/alice", {}),
        (ENROLL_TOKEN, "GET", "/metrics", {}),
        (VERIFY_TOKEN, "GET", "/metrics", {}),
    ],
)
async def test_scopes_are_enforced(
    services: InProcess, token: str, method: str, path: str, params: dict[str, str]
) -> None:
    response = await services.matcher.request(method, path, headers=octets(token), params=params, content=b"x")
    problem(response, 403, "forbidden")


async def test_public_keys_carry_the_signed_description(services: InProcess, keys_dir: Path) -> None:
    body = (await services.matcher.get("/v1/keys/public", headers=auth(VERIFY_TOKEN))).json()
    assert (body["model_id"], body["dimension"]) == (MODEL_ID, DIMENSION)
    bundle = vc.KeyBundle(vc.Role.PUBLIC, body["preset"], body["key_id"], base64.b64decode(body["bundle"]))
    description = vc.PublicDescription.from_dict(body["description"])
    verify_key = read_verify_key(keys_dir / "public" / "signing.pub")
    vc.verify_public_bundle(bundle, description, body["signature"], verify_key)
    assert bundle.context == (keys_dir / "public" / "context.bin").read_bytes()


async def test_enrol_read_replace_delete(services: InProcess) -> None:
    rng = np.random.default_rng(1)
    created = await enrol(services, "alice@example.org", unit(rng), token=ENROLL_TOKEN)
    assert created.status_code == 201, created.text
    meta = created.json()
    assert meta["subject_id"] == "alice@example.org" and meta["model_id"] == MODEL_ID
    # Whether someone is enrolled, and since when, is the admin's to read.
    for token in (ENROLL_TOKEN, VERIFY_TOKEN):
        problem(await services.matcher.get("/v1/subjects/alice@example.org", headers=auth(token)), 403, "forbidden")
    read = await services.matcher.get("/v1/subjects/alice@example.org", headers=auth())
    assert read.json() == meta and "template" not in read.text
    problem(await enrol(services, "alice@example.org", unit(rng)), 409, "subject-exists")

    await asyncio.sleep(0.002)  # so updated_at can differ at millisecond resolution
    template = services.client_cipher.encrypt(unit(rng))
    replaced = await services.matcher.put(
        "/v1/subjects/alice@example.org/template", params={"replace": "true"}, content=template, headers=octets()
    )
    assert replaced.status_code == 201
    assert replaced.json()["created_at"] == meta["created_at"] and replaced.json()["updated_at"] > meta["updated_at"]

    assert (await services.matcher.delete("/v1/subjects/alice@example.org", headers=auth())).status_code == 204
    problem(await services.matcher.delete("/v1/subjects/alice@example.org", headers=auth()), 404, "subject-not-found")
    problem(await services.matcher.get("/v1/subjects/alice@example.org", headers=auth()), 404, "subject-not-found")


async def test_verify_answers_a_signed_bit(services: InProcess, keys_dir: Path) -> None:
    rng = np.random.default_rng(2)
    face = unit(rng)
    assert (await enrol(services, "bob", face)).status_code == 201
    verify_key = read_verify_key(keys_dir / "public" / "signing.pub")
    for probe_vector, expected in ((near(rng, face), True), (unit(rng), False)):
        probe = services.client_cipher.encrypt(probe_vector)
        response = await verify(services, "bob", probe, token=VERIFY_TOKEN)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "score" not in response.text
        record = vc.DecisionRecord.from_dict(body)
        vc.verify_decision(
            record, verify_key, client_nonce=NONCE, probe_sha256=vc.probe_digest(probe), key_id=record.key_id
        )
        assert record.subject_id == "bob" and record.match is expected


async def test_unnormalised_template_and_probe_are_refused(services: InProcess) -> None:
    rng = np.random.default_rng(3)
    face = unit(rng)
    assert isinstance(services.client_cipher, vc.PlaintextClientCipher)
    scaled = unnormalised_plain(services.client_cipher, 1.2 * face)
    response = await services.matcher.put("/v1/subjects/carol/template", content=scaled, headers=octets())
    problem(response, 422, "template-not-normalised")
    problem(await services.matcher.get("/v1/subjects/carol", headers=auth()), 404, "subject-not-found")
    assert (await enrol(services, "carol", face)).status_code == 201
    problem(await verify(services, "carol", scaled), 422, "probe-not-normalised")


@pytest.mark.parametrize(
    "header_change",
    [
        {"key_id": "0" * 32},
        {"model_id": "arcface-r100-512"},
        {"dimension": 512},
        {"preset": "other"},
        {"scheme": "ckks"},
    ],
)
async def test_ciphertexts_of_another_deployment_are_refused(
    services: InProcess, header_change: dict[str, Any]
) -> None:
    envelope = vc.Envelope.from_bytes(
        services.client_cipher.encrypt(unit(np.random.default_rng(4))), kind=vc.EnvelopeKind.EMBEDDING
    )
    foreign = vc.Envelope(envelope.kind, {**envelope.header, **header_change}, envelope.payload).to_bytes()
    problem(
        await services.matcher.put("/v1/subjects/dave/template", content=foreign, headers=octets()),
        422,
        "invalid-ciphertext",
    )
    assert (await enrol(services, "dave", unit(np.random.default_rng(5)))).status_code == 201
    problem(await verify(services, "dave", foreign), 422, "invalid-ciphertext")


@pytest.mark.parametrize("body", [b"", b"garbage", b"VFCT\x01\x01\x00\x05{}", b"VFCT\x01\x02\x00\x02{}"])
async def test_garbage_is_refused(services: InProcess, body: bytes) -> None:
    problem(
        await services.matcher.put("/v1/subjects/erin/template", content=body, headers=octets()),
        422,
        "invalid-ciphertext",
    )


async def test_check_order_for_bodies(services: InProcess) -> None:
    rng = np.random.default_rng(6)
    big = b"\0" * (8 * DIMENSION + 8 + 1024 + 1)
    # unknown subject first, whatever the body
    problem(
        await services.matcher.post("/v1/subjects/nobody/verify", content=big, headers=auth()), 404, "subject-not-found"
    )
    assert (await enrol(services, "frank", unit(rng))).status_code == 201
    # size before content type, content type before the envelope and the nonce
    plain = {**auth(), "Content-Type": "text/plain"}
    problem(
        await services.matcher.post("/v1/subjects/frank/verify", content=big, headers=plain), 413, "payload-too-large"
    )
    problem(
        await services.matcher.put("/v1/subjects/gina/template", content=big, headers=plain), 413, "payload-too-large"
    )
    problem(
        await services.matcher.post("/v1/subjects/frank/verify", content=b"x", headers=plain),
        415,
        "unsupported-media-type",
    )
    problem(
        await services.matcher.put("/v1/subjects/gina/template", content=b"x", headers=auth()),
        415,
        "unsupported-media-type",
    )
    problem(
        await services.matcher.post("/v1/subjects/frank/verify", content=b"x", headers=octets()), 422, "invalid-request"
    )


async def test_streamed_body_over_the_limit_is_refused(services: InProcess) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b"\0" * 1024

    response = await services.matcher.put("/v1/subjects/hank/template", content=chunks(), headers=octets())
    problem(response, 413, "payload-too-large")


@pytest.mark.parametrize("nonce", [None, "short", "x" * 129, "has spaces in it!!", "plus+and/slash-0123456"])
async def test_client_nonce_is_required_and_checked(services: InProcess, nonce: str | None) -> None:
    rng = np.random.default_rng(7)
    assert (await enrol(services, "ivan", unit(rng))).status_code == 201
    headers = octets() | ({"X-Client-Nonce": nonce} if nonce is not None else {})
    probe = services.client_cipher.encrypt(unit(rng))
    response = await services.matcher.post("/v1/subjects/ivan/verify", content=probe, headers=headers)
    problem(response, 422, "invalid-request")


@pytest.mark.parametrize("subject", ["a" * 129, "white space", "semi;colon", "ümlaut"])
async def test_subject_ids_are_checked_after_authentication(services: InProcess, subject: str) -> None:
    problem(await services.matcher.get(f"/v1/subjects/{subject}"), 401, "unauthorized")
    problem(await services.matcher.get(f"/v1/subjects/{subject}", headers=auth()), 422, "invalid-request")
    response = await services.matcher.put(f"/v1/subjects/{subject}/template", content=b"x", headers=octets())
    problem(response, 422, "invalid-request")


async def test_unknown_routes_are_problems_too(services: InProcess) -> None:
    problem(await services.matcher.get("/v2/nothing", headers=auth()), 404, "not-found")
    problem(await services.matcher.post("/v1/keys/public", headers=auth()), 405, "method-not-allowed")


async def test_budget_refusals_are_relayed(keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path) -> None:
    async with in_process(keys_dir, matcher_keys_dir, tmp_path, authority={"budget_per_subject": 2}) as s:
        rng = np.random.default_rng(8)
        assert (await enrol(s, "judy", unit(rng))).status_code == 201  # the enrolment's norm check counts
        assert (await verify(s, "judy", s.client_cipher.encrypt(unit(rng)))).status_code == 200
        refused = await verify(s, "judy", s.client_cipher.encrypt(unit(rng)))
        assert "subject" in problem(refused, 429, "budget-exhausted")["detail"]
        assert int(refused.headers["retry-after"]) > 0


async def test_metrics_count_requests_and_decisions_without_identifiers(services: InProcess) -> None:
    rng = np.random.default_rng(9)
    face = unit(rng)
    assert (await enrol(services, "karl-secret-name", face)).status_code == 201
    assert (await verify(services, "karl-secret-name", services.client_cipher.encrypt(face))).status_code == 200
    problem(await services.matcher.get("/metrics", headers=auth(VERIFY_TOKEN)), 403, "forbidden")
    text = (await services.matcher.get("/metrics", headers=auth())).text
    assert 'veilface_decisions_total{outcome="match",purpose="verify"} 1.0' in text
    assert 'route="/v1/subjects/{subject_id}/verify"' in text
    assert "karl-secret-name" not in text and ADMIN_TOKEN not in text


def _authority_answering(handler: Any) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


async def test_requests_queue_before_the_work_not_at_the_authority(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one worker, at most 4 requests are between their compare and the authority's answer; the rest wait
    for a slot first, so a burst never piles onto the authority (where waiting would count as its delay)."""
    original = AuthorityClient.decide
    at_authority, most = 0, 0

    async def slow_decide(self: AuthorityClient, *args: Any, **kwargs: Any) -> Any:
        nonlocal at_authority, most
        at_authority += 1
        most = max(most, at_authority)
        try:
            await asyncio.sleep(0.05)
            return await original(self, *args, **kwargs)
        finally:
            at_authority -= 1

    monkeypatch.setattr(AuthorityClient, "decide", slow_decide)
    settings = {"matcher": {"matcher_workers": 1}, "authority": {"budget_per_subject": 100}}
    async with in_process(keys_dir, matcher_keys_dir, tmp_path, **settings) as s:
        rng = np.random.default_rng(12)
        face = unit(rng)
        assert (await enrol(s, "nina", face)).status_code == 201
        probes = [s.client_cipher.encrypt(near(rng, face)) for _ in range(16)]
        answers = await asyncio.gather(*(verify(s, "nina", probe) for probe in probes))
    assert [a.status_code for a in answers] == [200] * 16
    assert most == 4  # reached, never exceeded


async def test_authority_down_means_503_and_not_ready(keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with in_process(keys_dir, matcher_keys_dir, tmp_path, authority_transport=_authority_answering(refuse)) as s:
        ready = await s.matcher.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"database": True, "authority": False}
        problem(await enrol(s, "lena", unit(np.random.default_rng(10))), 503, "authority-unavailable")


async def test_a_hanging_authority_is_cut_off_within_two_seconds(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(500)

    async with in_process(keys_dir, matcher_keys_dir, tmp_path, authority_transport=_authority_answering(hang)) as s:
        started = time.monotonic()
        problem(await enrol(s, "mona", unit(np.random.default_rng(11))), 503, "authority-unavailable")
        assert time.monotonic() - started < 2.5


@pytest.mark.parametrize(
    ("status", "body", "expected_status", "slug"),
    [
        (409, {"type": "tag:veilface,2025:problems/replayed-request"}, 409, "replayed-request"),
        (409, {"type": "tag:veilface,2025:problems/replayed-probe"}, 409, "replayed-probe"),
        (429, {"detail": "the key decision budget is exhausted"}, 429, "budget-exhausted"),
        (401, {}, 503, "authority-unavailable"),
        (500, {}, 503, "authority-unavailable"),
        (422, {}, 502, "authority-bad-answer"),
        (200, {"unexpected": True}, 502, "authority-bad-answer"),
    ],
)
async def test_authority_answers_are_relayed_or_refused(
    keys_dir: Path,
    matcher_keys_dir: Path,
    tmp_path: Path,
    status: int,
    body: dict[str, Any],
    expected_status: int,
    slug: str,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    async with in_process(keys_dir, matcher_keys_dir, tmp_path, authority_transport=_authority_answering(answer)) as s:
        response = await enrol(s, "nina", unit(np.random.default_rng(12)))
        problem(response, expected_status, slug)
        assert "retry-after" not in response.headers or expected_status == 503

    # The same answers to a verification, after an enrolment the authority accepted.
    calls = 0

    def enrol_then_answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            return httpx.Response(status, json=body)
        accepted = {"request_id": request.headers[headers.REQUEST_ID], "purpose": "enrol", "outcome": "normalised"}
        return httpx.Response(200, json={**accepted, "record": None})

    transport = _authority_answering(enrol_then_answer)
    async with in_process(keys_dir, matcher_keys_dir, tmp_path / "verify", authority_transport=transport) as s:
        face = unit(np.random.default_rng(13))
        assert (await enrol(s, "otto", face)).status_code == 201
        problem(await verify(s, "otto", s.client_cipher.encrypt(face)), expected_status, slug)


async def test_a_forged_decision_is_not_relayed(keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path) -> None:
    """An answer signed by another key (or for another request) never reaches the client."""
    forger = vc.SigningKey.generate()

    def forge(request: httpx.Request) -> httpx.Response:
        record = vc.sign_decision(
            forger,
            request_id=request.headers["X-Request-Id"],
            subject_ref=request.headers["X-Subject-Ref"],
            match=True,
            key_id="0" * 32,
            client_nonce=request.headers.get("X-Client-Nonce", ""),
            probe_sha256=request.headers.get("X-Probe-Sha256", ""),
        )
        purpose = "verify" if "X-Client-Nonce" in request.headers else "enrol"
        outcome = "match" if purpose == "verify" else "normalised"
        body = {"request_id": record.request_id, "purpose": purpose, "outcome": outcome}
        return httpx.Response(200, json={**body, "record": record.to_dict() if purpose == "verify" else None})

    async with in_process(keys_dir, matcher_keys_dir, tmp_path, authority_transport=_authority_answering(forge)) as s:
        rng = np.random.default_rng(13)
        assert (await enrol(s, "oscar", unit(rng))).status_code == 201
        problem(await verify(s, "oscar", s.client_cipher.encrypt(unit(rng))), 502, "authority-bad-answer")


# -- replays: a probe's bytes get one signed decision (docs/design.md §2.6) -------------------------------------


async def test_a_probe_is_answered_once_whatever_the_nonce_or_subject(services: InProcess) -> None:
    rng = np.random.default_rng(20)
    face = unit(rng)
    for subject in ("pia", "quinn"):
        assert (await enrol(services, subject, face)).status_code == 201
    genuine = near(rng, face)
    probe = services.client_cipher.encrypt(genuine)
    assert (await verify(services, "pia", probe)).json()["match"] is True
    again = octets(**{"X-Client-Nonce": "another-nonce-0123456789"})
    for subject in ("pia", "quinn"):
        response = await services.matcher.post(f"/v1/subjects/{subject}/verify", content=probe, headers=again)
        detail = problem(response, 409, "replayed-probe")["detail"]
        assert detail == "this probe was answered before; encrypt the embedding again for each verification"
    # The stand-in's encryption is random too: the same embedding encrypted again is another probe.
    fresh = services.client_cipher.encrypt(genuine)
    assert fresh != probe and (await verify(services, "pia", fresh)).json()["match"] is True
    # A refused probe got no signed decision, so it is not spent: refused again for what it is.
    assert isinstance(services.client_cipher, vc.PlaintextClientCipher)
    unnormalised = unnormalised_plain(services.client_cipher, 1.2 * genuine)
    for _ in range(2):
        problem(await verify(services, "pia", unnormalised), 422, "probe-not-normalised")


class FlakyAuthority(httpx.AsyncBaseTransport):
    """The authority, unreachable for the next ``failures`` decisions."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failures = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures and request.url.path == "/v1/decisions":
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


async def test_a_probe_refused_for_an_outage_or_a_budget_can_be_sent_again(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path
) -> None:
    """A probe is spent only by a signed decision: after a 503 or a 429 the same bytes are answered."""
    authority = plaintext_authority_app(authority_settings(keys_dir, tmp_path / "authority", budget_per_subject=2))
    async with lifespan(authority):
        flaky = FlakyAuthority(httpx.ASGITransport(app=authority))
        async with in_process(keys_dir, matcher_keys_dir, tmp_path / "services", authority_transport=flaky) as s:
            rng = np.random.default_rng(21)
            face = unit(rng)
            for subject in ("rita", "sam"):
                assert (await enrol(s, subject, face)).status_code == 201  # 1 of 2 decisions for each
            probe = s.client_cipher.encrypt(near(rng, face))
            flaky.failures = 1
            problem(await verify(s, "rita", probe), 503, "authority-unavailable")
            assert (await verify(s, "rita", probe)).json()["match"] is True  # 2 of 2 for rita
            other = s.client_cipher.encrypt(near(rng, face))
            problem(await verify(s, "rita", other), 429, "budget-exhausted")
            assert (await verify(s, "sam", other)).json()["match"] is True


@pytest.mark.parametrize("guard", ["both", "authority", "matcher"])
async def test_identical_probes_at_once_get_exactly_one_signed_decision(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guard: str
) -> None:
    """Eight copies of one probe at once: one answer 200 with a signed record, seven 409 replayed-probe.

    ``authority``: every copy passes the matcher's check (as copies racing past it do), the authority signs
    once. ``matcher``: the same, with an authority that signs every copy (a faulty one): the matcher relays
    only the first decision it records. ``both``: nothing patched.
    """
    if guard in ("authority", "matcher"):
        monkeypatch.setattr(TemplateStore, "probe_consumed", lambda self, key_id, probe_sha256: False)
    if guard == "matcher":
        record = DecisionLedger.record

        def forgetful(self: DecisionLedger, **fields: Any) -> Any:
            return record(self, **{**fields, "signed_probe": None})

        monkeypatch.setattr(DecisionLedger, "record", forgetful)
    async with in_process(keys_dir, matcher_keys_dir, tmp_path) as s:
        rng = np.random.default_rng(22)
        face = unit(rng)
        assert (await enrol(s, "tara", face)).status_code == 201
        probe = s.client_cipher.encrypt(near(rng, face))
        answers = await asyncio.gather(*(verify(s, "tara", probe) for _ in range(8)))
        ledger = open_ledger_database(f"sqlite:///{s.authority_data / 'authority.db'}")
        outcomes = sorted(entry.outcome for entry in audit_entries(ledger) if entry.purpose == "verify")
        ledger.dispose()
    assert sorted(answer.status_code for answer in answers) == [200] + [409] * 7
    for answer in answers:
        if answer.status_code == 409:
            problem(answer, 409, "replayed-probe")
    assert answers[[a.status_code for a in answers].index(200)].json()["match"] is True
    signed = outcomes.count("match")
    if guard == "authority":
        assert (signed, outcomes.count("refused-replayed-probe")) == (1, 7)
    elif guard == "matcher":
        assert signed == 8  # the faulty authority signed every copy; one reached a client
    else:
        assert signed == 1
