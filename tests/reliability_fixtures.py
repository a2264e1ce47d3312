"""Fixtures for the reliability tests. Test modules bind them as module attributes, as with server_fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from veilface.bench.harness.faults import PostgresUnavailableError, PrivatePostgres


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
