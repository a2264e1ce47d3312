"""Both services' HTTP APIs under schemathesis, as real processes with real CKKS (issue 8).

Every operation of each OpenAPI document, with valid tokens so requests get past 401: positive and
negative cases from the schema, and cases carrying real ciphertexts or mutations of them so that they
reach the parsers and the homomorphic work. No 5xx, no dropped connection, statuses, media types and
bodies as documented. VEILFACE_FUZZ_EXAMPLES raises the count (``veilface bench reliability`` runs more).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import server_fixtures as sf

import veilface.crypto as vc
from veilface.bench._faults import deployment, template_pool
from veilface.bench._fuzz import fuzz_http
from veilface.bench.reliability import http_row

pytestmark = pytest.mark.e2e
keyset = sf.keyset
EXAMPLES = int(os.environ.get("VEILFACE_FUZZ_EXAMPLES", "40"))
OPERATIONS = 13  # 8 at the matcher, 5 at the authority


def test_no_request_gets_a_server_error(keyset: vc.KeySet, tmp_path: Path) -> None:
    with deployment(tmp_path, keyset=keyset) as dep:
        report = fuzz_http(dep, template_pool(dep.cipher, 3, np.random.default_rng(70)), examples=EXAMPLES)
        logs = (dep.matcher.log_path.read_text(), dep.authority.log_path.read_text())
    print(json.dumps({"cases": report["cases"], "operations": report["operations"]}))
    assert report["server_errors"] == [] and report["transport_errors"] == []
    assert report["nonconforming"] == []
    assert report["services_alive"]
    assert len(report["operations"]) == OPERATIONS
    # The deep cases reached the work behind the checks: enrolments stored, verifications and decisions made.
    statuses = {name: op["statuses"] for name, op in report["operations"].items()}
    assert "201" in statuses["matcher PUT /v1/subjects/{subject_id}/template"]
    assert "200" in statuses["matcher POST /v1/subjects/{subject_id}/verify"]
    assert "200" in statuses["authority POST /v1/decisions"]
    assert not any('"level": "error"' in log for log in logs)
    assert http_row(report)[2] == "0 5xx, 0 dropped connections, 0 answers not as documented"
