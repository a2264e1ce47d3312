"""Both services' HTTP APIs under schemathesis, as real processes with real CKKS (issue 8).

Every operation of each OpenAPI document, with valid tokens so requests get past 401: positive and
negative cases from the schema, and cases carrying real ciphertexts or mutations of them so that they
reach the parsers and the homomorphic work. No 5xx, no dropped connection, statuses, media types and
bodies as documented. VEILFACE_FUZZ_EXAMPLES raises the count (``veilface bench reliability`` runs more).
Also here: the subject ids "." and "..", which the schema allows, from the client to the matcher.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
import server_fixtures as sf

import veilface.crypto as vc
from veilface.bench.harness.deployment import deployment
from veilface.bench.harness.faults import template_pool
from veilface.bench.harness.fuzz import fuzz_http
from veilface.bench.reliability import http_row
from veilface.client.api import Client

EXAMPLES = int(os.environ.get("VEILFACE_FUZZ_EXAMPLES", "40"))
OPERATIONS = 13  # 8 at the matcher, 5 at the authority


@pytest.mark.e2e
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


@pytest.mark.parametrize("subject", [".", ".."])
def test_dot_subject_ids_reach_the_matcher_from_the_client(keyset: vc.KeySet, subject: str) -> None:
    """The schema allows "." and "..", but sent as literal path segments an HTTP client resolves them away:
    the client enrolled, verified and deleted other paths (405 or 404) instead."""
    paths: list[bytes] = []

    def matcher(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path)
        return httpx.Response(204)

    transport = httpx.MockTransport(matcher)
    with Client(
        "http://matcher", token="t" * 20, authority_key=keyset.signing_key.verify_key, transport=transport
    ) as c:
        c.delete(subject)
    assert paths == [b"/v1/subjects/" + b"%2E" * len(subject)]


@pytest.mark.anyio
@pytest.mark.parametrize("subject", [".", ".."])
async def test_the_matcher_reads_escaped_dots_as_the_subject_id(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path, subject: str
) -> None:
    async with sf.in_process(keys_dir, matcher_keys_dir, tmp_path) as services:
        template = services.client_cipher.encrypt(sf.unit(np.random.default_rng(71)))
        escaped = "%2E" * len(subject)
        enrolled = await services.matcher.put(f"/v1/subjects/{escaped}/template", content=template, headers=sf.octets())
        assert enrolled.status_code == 201 and enrolled.json()["subject_id"] == subject
        assert (await services.matcher.get(f"/v1/subjects/{escaped}", headers=sf.auth())).status_code == 200
