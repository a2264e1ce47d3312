"""Restarts (issue 8): SIGTERM under load stops each service cleanly, leaves no worker behind, and its port
binds again at once; the service restarts on it and serves. Real processes, two matcher workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import veilface.crypto as vc
from veilface.bench.harness.deployment import deployment
from veilface.bench.harness.faults import template_pool, verification_work
from veilface.bench.reliability import restart_check, restart_problems, restart_rows

pytestmark = pytest.mark.e2e


def test_sigterm_under_load_leaves_nothing_behind(keyset: vc.KeySet, tmp_path: Path) -> None:
    with deployment(tmp_path, keyset=keyset, workers=2) as dep:
        work = verification_work(dep, template_pool(dep.cipher, 2, np.random.default_rng(60)), "restart")
        report = restart_check(dep, work, clients=4, load_s=1.0)
    print(json.dumps(report))
    assert restart_problems(report) == []
    assert report["matcher"]["processes_before"].count("worker") == 2
    assert report["authority"]["processes_before"].count("worker") == 1
    assert all("port bound again at once: yes" in row[2] for row in restart_rows(report))
