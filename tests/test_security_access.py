"""Transport and access: TLS on both hops with a self-signed certificate, and tokens and scopes on every
endpoint the services publish (enumerated from their OpenAPI, so a new endpoint cannot be left out)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import numpy as np
import pytest
import server_fixtures as sf
from security_helpers import free_port, launched, readiness, self_signed
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

from veilface.client.api import Client
from veilface.crypto import ServiceError
from veilface.server.standin import plaintext_authority_app, plaintext_matcher_app

anyio_backend, keyset, keys_dir, matcher_keys_dir, services = (
    sf.anyio_backend,
    sf.keyset,
    sf.keys_dir,
    sf.matcher_keys_dir,
    sf.services,
)

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


def test_tls_on_both_hops_with_a_self_signed_certificate(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    tls = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    trust = ssl.create_default_context(cafile=str(cert))
    authority_port, matcher_port, untrusting_port = free_port(), free_port(), free_port()
    common = {"VEILFACE_AUTHORITY_TOKEN": AUTHORITY_TOKEN}
    matcher_env = common | {
        "VEILFACE_OPERATOR_TOKENS": ADMIN_TOKEN,
        "VEILFACE_AUTHORITY_URL": f"https://127.0.0.1:{authority_port}",
        "VEILFACE_MATCHER_WORKERS": "1",
    }
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
