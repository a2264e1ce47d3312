"""The fixtures tests share: one key ceremony per session, the services in-process, the test databases.

Plain helpers (tokens, settings, vectors, scanners) are modules next to this one: ``server_fixtures``,
``security_helpers``, ``face_fixtures``, ``cli_helpers``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PIL import Image
from server_fixtures import DIMENSION, MODEL_ID, POSTGRES_ENV, InProcess, drop_veilface_tables, in_process

import veilface.crypto as vc
from veilface.bench.harness.faults import PostgresUnavailableError, PrivatePostgres
from veilface.server.keystore import write_keyset


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def keyset() -> vc.KeySet:
    return vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL_ID, dimension=DIMENSION)


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory, keyset: vc.KeySet) -> Path:
    directory = tmp_path_factory.mktemp("keys") / "keys"
    write_keyset(directory, keyset)
    return directory


@pytest.fixture(scope="session")
def matcher_keys_dir(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path) -> Path:
    """What a matcher host receives: copies of evaluation/ and public/ only."""
    directory = tmp_path_factory.mktemp("matcher-keys")
    for role in ("evaluation", "public"):
        shutil.copytree(keys_dir / role, directory / role)
    return directory


@pytest.fixture
async def services(keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path) -> AsyncIterator[InProcess]:
    """Both services in this process over ASGI, with the plaintext stand-in ciphers."""
    async with in_process(keys_dir, matcher_keys_dir, tmp_path) as running:
        yield running


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL with veilface's tables dropped; skips when VEILFACE_TEST_POSTGRES_URL is unset."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (CI's .ci/run starts PostgreSQL and sets it)")
    drop_veilface_tables(url)
    yield url
    drop_veilface_tables(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL: a SQLite file (its folder not made yet), or the test PostgreSQL server's."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'service.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, str], str]:
    """Both services' database settings for start_services(env=...), and the matcher's database URL (for
    scanning or reopening it): SQLite in the data directory, or the test PostgreSQL server."""
    if request.param == "sqlite":
        return {}, f"sqlite:///{tmp_path / 'data' / 'matcher' / 'matcher.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return {"VEILFACE_MATCHER_DATABASE_URL": url, "VEILFACE_AUTHORITY_DATABASE_URL": url}, url


@pytest.fixture(scope="module")
def tom() -> Image.Image:
    """The shipped photo with one aligned face, as RGB."""
    from face_fixtures import photo  # here, not at the top: face_fixtures imports onnx (~1 s)

    return photo("tom_hanks")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of the test's own: stopping it, or runs of the suite in parallel, cannot disturb
    the shared test database (VEILFACE_TEST_POSTGRES_URL) or anyone using it."""
    try:
        cluster = PrivatePostgres()
    except PostgresUnavailableError as exc:
        pytest.skip(f"cannot run a private PostgreSQL cluster here: {exc}")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()  # stops it whether the test left it running or stopped
