"""Helpers of the server tests: tokens, settings, vectors, and both services in-process (``in_process``).

The pytest fixtures built on them (``keyset``, ``keys_dir``, ``services``, the databases) are in conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

import veilface.crypto as vc
from veilface.crypto import _ckks
from veilface.protocol.face_models import DLIB_RESNET
from veilface.server.authority import create_authority_app
from veilface.server.authority.engine import AuthorityEngine
from veilface.server.keystore import read_public_description
from veilface.server.matcher import create_matcher_app
from veilface.server.matcher.engine import MatcherEngine
from veilface.server.settings import AuthoritySettings, MatcherSettings
from veilface.server.standin import plaintext_authority_app, plaintext_matcher_app

MODEL_ID = DLIB_RESNET.model_id
DIMENSION = DLIB_RESNET.dimension
THRESHOLD = DLIB_RESNET.default_threshold
ADMIN_TOKEN = "admin-token-0123456789abcdef"
ENROLL_TOKEN = "enroll-token-0123456789abcdef"
VERIFY_TOKEN = "verify-token-0123456789abcdef"
OPERATOR_TOKENS = f"{ADMIN_TOKEN},{ENROLL_TOKEN}:enroll,{VERIFY_TOKEN}:verify"
AUTHORITY_TOKEN = "internal-token-0123456789abcdef0123456789"
POSTGRES_ENV = "VEILFACE_TEST_POSTGRES_URL"


def auth(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def octets(token: str = ADMIN_TOKEN, **extra: str) -> dict[str, str]:
    return {**auth(token), "Content-Type": "application/octet-stream", **extra}


def unit(rng: np.random.Generator, dimension: int = DIMENSION) -> np.ndarray:
    vector = rng.normal(size=dimension)
    return vector / np.linalg.norm(vector)


def near(rng: np.random.Generator, vector: np.ndarray, noise: float = 0.02) -> np.ndarray:
    """A genuine-like probe: the same direction plus a little noise (cosine ~0.97 at 128-D)."""
    other = vector + noise * rng.normal(size=vector.shape)
    return other / np.linalg.norm(other)


def unnormalised_ckks(client: vc.CkksClientCipher, vector: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Encrypt ``vector`` exactly as given, skipping the client's normalisation (a dishonest client)."""
    with monkeypatch.context() as patch:
        patch.setattr(_ckks, "prepare_embedding", lambda embedding, dimension: np.asarray(embedding, dtype=float))
        return client.encrypt(vector)


def unnormalised_plain(client: vc.PlaintextClientCipher, vector: np.ndarray) -> bytes:
    header = {
        "scheme": "plaintext",
        "key_id": client.key_id,
        "model_id": client.model_id,
        "dimension": client.dimension,
        "preset": client.preset,
    }
    return vc.Envelope(vc.EnvelopeKind.EMBEDDING, header, np.asarray(vector, "<f8").tobytes()).to_bytes()


def _development(service: str, keys: Path, data: Path) -> dict[str, Any]:
    """A service's settings for tests: its keys and data directory, no database URL, development mode."""
    return {
        f"{service}_keys_dir": keys,
        f"{service}_data_dir": data,
        f"{service}_database_url": None,
        "authority_token": AUTHORITY_TOKEN,
        "environment": "development",
    }


def matcher_settings(keys: Path, data: Path, **overrides: Any) -> MatcherSettings:
    values: dict[str, Any] = {
        "operator_tokens": OPERATOR_TOKENS,
        "authority_url": "http://authority.invalid",
        "matcher_workers": 1,
        "match_threshold": None,
    }
    return MatcherSettings(**{**_development("matcher", keys, data), **values, **overrides})


def authority_settings(keys: Path, data: Path, **overrides: Any) -> AuthoritySettings:
    return AuthoritySettings(**{**_development("authority", keys, data), **overrides})


@dataclass
class InProcess:
    """Matcher and authority apps in this process; ``matcher`` and ``authority`` are HTTP clients to them."""

    matcher: httpx.AsyncClient
    authority: httpx.AsyncClient
    client_cipher: vc.ClientCipher
    matcher_data: Path
    authority_data: Path


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


@asynccontextmanager
async def in_process(
    keys_dir: Path,
    matcher_keys_dir: Path,
    data: Path,
    *,
    ckks: vc.KeySet | None = None,
    matcher: dict[str, Any] | None = None,
    authority: dict[str, Any] | None = None,
    authority_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[InProcess]:
    """Both services over ASGI. Plaintext stand-ins by default; ``ckks=keyset`` runs the real ciphers inline.

    ``authority_transport`` replaces the in-process authority behind the matcher (outages, bad answers).
    """
    a_settings = authority_settings(keys_dir, data / "authority", **(authority or {}))
    m_settings = matcher_settings(matcher_keys_dir, data / "matcher", **(matcher or {}))
    client_cipher: vc.ClientCipher
    if ckks is None:
        authority_app = plaintext_authority_app(a_settings)
        transport = authority_transport or httpx.ASGITransport(app=authority_app)
        matcher_app = plaintext_matcher_app(m_settings, authority_transport=transport)
        key_id = read_public_description(keys_dir)[0].key_id
        client_cipher = vc.PlaintextClientCipher(key_id=key_id, model_id=MODEL_ID, dimension=DIMENSION)
    else:
        authority_cipher = vc.CkksAuthorityCipher(ckks.secret)
        authority_app = create_authority_app(
            a_settings,
            engine=AuthorityEngine.inline(authority_cipher, ciphertext_bytes=authority_cipher.ciphertext_bytes),
        )
        matcher_cipher = vc.CkksMatcherCipher(ckks.evaluation, model_id=MODEL_ID, dimension=DIMENSION)
        matcher_app = create_matcher_app(
            m_settings,
            engine=MatcherEngine.inline(matcher_cipher, ciphertext_bytes=matcher_cipher.ciphertext_bytes),
            authority_transport=authority_transport or httpx.ASGITransport(app=authority_app),
        )
        client_cipher = vc.CkksClientCipher(ckks.public, model_id=MODEL_ID, dimension=DIMENSION)
    async with lifespan(authority_app), lifespan(matcher_app):
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=matcher_app), base_url="http://matcher") as m,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=authority_app), base_url="http://authority") as a,
        ):
            yield InProcess(m, a, client_cipher, data / "matcher", data / "authority")


def drop_veilface_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        names = conn.execute(text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'vf\\_%'")).scalars().all()
        for name in names:
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
    engine.dispose()
