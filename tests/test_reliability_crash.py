"""Crash safety (issue 8): enrolments in flight while the matcher's whole process group is SIGKILLed.

After each restart on the same port and data, every acknowledged (201) enrolment is present byte for byte
and verifies as before; no row holds anything but the complete template sent for it. Real processes, real
CKKS templates (a few, encrypted once, each under many subject ids). ``veilface bench crash`` runs 1,000+.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import veilface.crypto as vc
from veilface.bench.harness.deployment import deployment
from veilface.bench.harness.faults import template_pool
from veilface.bench.reliability import crash_row, crash_safety

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", "postgresql"])
def matcher_database(request: pytest.FixtureRequest) -> str | None:
    """None: the matcher's default SQLite file; else a private PostgreSQL cluster's URL."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("private_postgres").url)


def test_acknowledged_enrolments_survive_sigkill(
    keyset: vc.KeySet, tmp_path: Path, matcher_database: str | None
) -> None:
    with deployment(tmp_path, keyset=keyset, workers=2, matcher_database_url=matcher_database) as dep:
        pool = template_pool(dep.cipher, 4, np.random.default_rng(90))
        report = crash_safety(dep, pool, enrolments=40, rounds=2, clients=6)
        assert dep.matcher.starts == 3
    print(json.dumps(report))
    assert report["acknowledged"] >= 40 and report["recovered"] == report["acknowledged"]
    assert report["missing"] == [] and report["corrupt"] == [] and report["failed_verifications"] == []
    # The kills really caught enrolments in flight.
    assert all(in_flight > 0 for in_flight in report["in_flight_at_kill"])
    assert "0 missing, 0 corrupt rows" in crash_row(report)[2]
