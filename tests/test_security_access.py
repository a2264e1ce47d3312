"""Transport and access: TLS on both hops with a self-signed certificate, and tokens and scopes on every
endpoint the services publish (enumerated from their OpenAPI, so a new endpoint cannot be left out)."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import httpx
import numpy as np
import pytest
import server_fixtures as sf
from security_helpers import free_port, launched, readiness, self_signed, service_env
from server_fixtures import (
    ADMIN_TOKEN,
    AUTHORITY_TOKEN,
    ENROLL_TOKEN,
    VERIFY_TOKEN,
    InProcess,
    auth,
    near,
    unit,
)

import veilface.crypto as vc
from veilface.client.api import Client
from veilface.crypto import PlaintextClientCipher, ServiceError
from veilface.server.keystore import read_public_description
from veilface.server.launch import start_services
from veilface.server.matcher.authority_client import READY_CACHE_S
from veilface.server.standin import plaintext_authority_app, plaintext_matcher_app

HEALTH = {("GET", "/healthz"), ("GET", "/readyz")}
# Every other matcher endpoint and the scope it needs (None: any valid operator token). A new endpoint fails
# test_every_endpoint_is_classified until it is added here, and then the tests below check it.
MATCHER_SCOPES: dict[tuple[str, str], str | None] = {
    ("GET", "/v1/keys/public"): None,
    ("PUT", "/v1/subjects/{subject_id}/template"): "enroll",
    ("POST", "/v1/subjects/{subject_id}/verify"): "verify",
    ("GET", "/v1/subjects/{subject_id}"): "admin",
    ("DELETE", "/v1/subjects/{subject_id}"): "admin",
    ("GET", "/metrics"): "admin",
}
AUTHORITY_ENDPOINTS = {("POST", "/v1/decisions"), ("GET", "/v1/keys/signing"), ("GET", "/metrics")}
TOKEN_SCOPES = {ADMIN_TOKEN: {"enroll", "verify", "admin"}, ENROLL_TOKEN: {"enroll"}, VERIFY_TOKEN: {"verify"}}


def published_routes(app: object) -> set[tuple[str, str]]:
    paths = app.openapi()["paths"]  # type: ignore[attr-defined]
    return {(method.upper(), path) for path, operations in paths.items() for method in operations}


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path, matcher_keys_dir: Path) -> dict[str, set]:
    """The routes each app publishes (its OpenAPI document, built without starting it)."""
    data = tmp_path_factory.mktemp("routes")
    matcher = plaintext_matcher_app(sf.matcher_settings(matcher_keys_dir, data / "matcher"))
    authority = plaintext_authority_app(sf.authority_settings(keys_dir, data / "authority"))
    return {"matcher": published_routes(matcher), "authority": published_routes(authority)}


def test_every_endpoint_is_classified(routes: dict[str, set]) -> None:
    assert routes["matcher"] == HEALTH | set(MATCHER_SCOPES)
    assert routes["authority"] == HEALTH | AUTHORITY_ENDPOINTS


def concrete(path: str) -> str:
    return path.replace("{subject_id}", "alice")


@pytest.mark.anyio
async def test_the_matcher_wants_a_token_on_every_endpoint_but_health_and_the_scope_it_names(
    services: InProcess,
) -> None:
    for method, path in sorted(MATCHER_SCOPES):
        for headers in (
            {},
            auth("not-a-token-of-this-matcher"),
            auth(AUTHORITY_TOKEN),
            {"Authorization": "Basic x"},
            {"Authorization": "Bearer "},
            {"Authorization": f"Basic {ADMIN_TOKEN}"},
        ):
            response = await services.matcher.request(method, concrete(path), headers=headers, content=b"x")
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["type"].endswith("/unauthorized")
        scope = MATCHER_SCOPES[(method, path)]
        for token, scopes in TOKEN_SCOPES.items():
            response = await services.matcher.request(method, concrete(path), headers=auth(token), content=b"x")
            if scope is None or scope in scopes:
                assert response.status_code not in (401, 403), (method, path, token, response.text)
            else:
                assert response.status_code == 403 and response.json()["type"].endswith("/forbidden"), (method, path)
    replace = await services.matcher.put(
        "/v1/subjects/alice/template", params={"replace": "true"}, headers=auth(ENROLL_TOKEN), content=b"x"
    )
    assert replace.status_code == 403  # replacing a template (re-enrolment) is an admin's act
    for method, path in sorted(HEALTH):
        assert (await services.matcher.request(method, path)).status_code == 200


@pytest.mark.anyio
async def test_the_authority_answers_only_the_matchers_token(services: InProcess) -> None:
    for method, path in sorted(AUTHORITY_ENDPOINTS):
        for headers in (
            {},
            auth(ADMIN_TOKEN),
            auth(AUTHORITY_TOKEN[:-1]),
            {"Authorization": f"Token {AUTHORITY_TOKEN}"},
        ):
            response = await services.authority.request(method, path, headers=headers, content=b"x")
            assert response.status_code == 401, (method, path, headers)
        response = await services.authority.request(method, path, headers=auth(AUTHORITY_TOKEN), content=b"x")
        assert response.status_code not in (401, 403), (method, path, response.text)


# -- TLS between client and matcher, and between matcher and authority -----------------------------------------


@pytest.mark.e2e
def test_tls_on_both_hops_with_a_self_signed_certificate(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    tls = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    trust = ssl.create_default_context(cafile=str(cert))
    authority_port, matcher_port, untrusting_port = free_port(), free_port(), free_port()
    common, matcher_env = service_env(f"https://127.0.0.1:{authority_port}")
    matcher_url = f"https://127.0.0.1:{matcher_port}"
    rng = np.random.default_rng(70)
    face = unit(rng)
    with (
        launched("authority", keys_dir, tmp_path / "authority", authority_port, common, tls),
        launched(
            "matcher", matcher_keys_dir, tmp_path / "matcher", matcher_port,
            matcher_env | {"VEILFACE_AUTHORITY_CA_FILE": str(cert)}, tls,
        ),
        # The same matcher without the authority's certificate among its CAs: it must not trust the authority.
        launched("matcher", matcher_keys_dir, tmp_path / "untrusting", untrusting_port, matcher_env, []),
    ):  # fmt: skip
        assert readiness(matcher_url, trust, until_ready=True).json() == {"database": True, "authority": True}
        untrusting = readiness(f"http://127.0.0.1:{untrusting_port}", trust, until_ready=False)
        assert untrusting.status_code == 503 and untrusting.json() == {"database": True, "authority": False}

        signing_pub = keys_dir / "public" / "signing.pub"
        with Client(matcher_url, token=ADMIN_TOKEN, authority_key=signing_pub, verify_tls=cert) as client:
            client.enroll_embedding("tls-alice", face)
            assert client.verify_embedding("tls-alice", near(rng, face)).match is True
        # What the command line uses: the system's CAs, or the file SSL_CERT_FILE names.
        with monkeypatch.context() as patch:
            patch.setenv("SSL_CERT_FILE", str(cert))
            with Client(matcher_url, token=ADMIN_TOKEN, authority_key=signing_pub) as client:
                assert client.verify_embedding("tls-alice", face).match is True
        with Client(matcher_url, token=ADMIN_TOKEN, authority_key=signing_pub) as client:
            with pytest.raises(ServiceError, match="cannot reach the matcher"):
                client.verify_embedding("tls-alice", face)  # an unknown certificate is refused
        plain = f"http://127.0.0.1:{matcher_port}"
        with Client(plain, token=ADMIN_TOKEN, authority_key=signing_pub) as client:
            with pytest.raises(ServiceError):
                client.verify_embedding("tls-alice", face)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{authority_port}/healthz", timeout=5.0)
        assert httpx.get(matcher_url + "/v1/keys/public", verify=trust, timeout=5.0).status_code == 401


# -- readiness, file modes, problem details --------------------------------------------------------------------


class CountingAuthority(httpx.AsyncBaseTransport):
    """The authority, counting the requests the matcher sends it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await self.inner.handle_async_request(request)


@pytest.mark.anyio
async def test_readyz_asks_the_authority_at_most_once_a_second(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path
) -> None:
    """/readyz needs no token: a burst of them costs the authority one check (two requests) per second."""
    authority = plaintext_authority_app(sf.authority_settings(keys_dir, tmp_path / "authority"))
    async with sf.lifespan(authority):
        counting = CountingAuthority(httpx.ASGITransport(app=authority))
        async with sf.in_process(keys_dir, matcher_keys_dir, tmp_path / "s", authority_transport=counting) as s:
            answers = await asyncio.gather(*(s.matcher.get("/readyz") for _ in range(20)))
            answers += [await s.matcher.get("/readyz") for _ in range(20)]
            assert {a.status_code for a in answers} == {200} and counting.requests == 2
            await asyncio.sleep(READY_CACHE_S + 0.1)
            assert (await s.matcher.get("/readyz")).status_code == 200 and counting.requests == 4


def test_data_directories_are_private_and_database_files_0600(keys_dir: Path, tmp_path: Path) -> None:
    """Directories made 0755 beforehand are 0700 once the services start; what they write is 0600."""
    data = tmp_path / "data"
    for directory in (data, data / "matcher", data / "authority"):
        directory.mkdir(mode=0o755)
        directory.chmod(0o755)
    with start_services(keys_dir, data, operator_token=ADMIN_TOKEN, plaintext=True) as services:
        with Client(
            services.matcher_url,
            token=ADMIN_TOKEN,
            authority_key=keys_dir / "public" / "signing.pub",
            state_dir=tmp_path / "client-state",
        ) as client:
            key_id = client.deployment().key_id
            cipher = PlaintextClientCipher(key_id=key_id, model_id=sf.MODEL_ID, dimension=sf.DIMENSION)
            face = unit(np.random.default_rng(71))
            client.enroll_ciphertext("modes", cipher.encrypt(face))
            assert client.verify_ciphertext("modes", cipher.encrypt(face)).match is True
        written = {
            path.relative_to(data).as_posix(): stat.S_IMODE(path.stat().st_mode)
            for service in ("matcher", "authority")
            for path in (data / service).iterdir()
            if path.is_file()
        }
        directories = {d.name: stat.S_IMODE(d.stat().st_mode) for d in (data, data / "matcher", data / "authority")}
    assert directories == {"data": 0o700, "matcher": 0o700, "authority": 0o700}
    for expected in ("matcher/matcher.db", "matcher/matcher.db-wal", "matcher/pseudonym.key", "authority/authority.db"):
        assert expected in written
    assert {name: mode for name, mode in written.items() if mode != 0o600} == {}


@pytest.mark.anyio
async def test_problem_details_name_the_field_never_a_submitted_value_or_the_key_id(
    services: InProcess, keys_dir: Path
) -> None:
    key_id = read_public_description(keys_dir)[0].key_id
    envelope = vc.Envelope.from_bytes(
        services.client_cipher.encrypt(unit(np.random.default_rng(72))), kind=vc.EnvelopeKind.EMBEDDING
    )
    submitted = "f00d" * 8
    forged = [
        {**envelope.header, "key_id": submitted},
        {**envelope.header, "model_id": "model-" + submitted},
        {**envelope.header, "dimension": 4099},
        {**envelope.header, "field-" + submitted: 1},
    ]
    details = []
    for header in forged:
        body = vc.Envelope(envelope.kind, header, envelope.payload).to_bytes()
        response = await services.matcher.put("/v1/subjects/vera/template", content=body, headers=sf.octets())
        assert response.status_code == 422 and response.json()["type"].endswith("/invalid-ciphertext")
        details.append(response.json()["detail"])
    assert details[:3] == [
        f"ciphertext {field} differs from this deployment's" for field in ("key_id", "model_id", "dimension")
    ]
    assert details[3].startswith("envelope header has unknown fields (1); expected only ")
    assert not [detail for detail in details if submitted in detail or key_id in detail or "4099" in detail]
    version, kind = b"VFCT\x07\x01\x00\x02{}", b"VFCT\x01\x09\x00\x02{}"  # version 7, kind 9
    for body, detail in (
        (version, "envelope format version is not supported (expected 1)"),
        (kind, "envelope is not of kind embedding"),
    ):
        response = await services.matcher.put("/v1/subjects/vera/template", content=body, headers=sf.octets())
        assert response.json()["detail"] == detail
