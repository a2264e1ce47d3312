"""End to end against real processes: authority and matcher under uvicorn on loopback, real CKKS.

Enrol, verify (genuine, impostor, scaled), delete; SIGTERM stops everything (no worker left, ports free);
afterwards nothing the matcher wrote or read, and no row of its database, holds secret-key material.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import server_fixtures as sf
from security_helpers import database_values, descendants, files_holding, secret_markers, self_signed
from server_fixtures import ADMIN_TOKEN, DIMENSION, MODEL_ID, auth, near, octets, unit, unnormalised_ckks

import veilface.crypto as vc
from veilface.bench.harness.processes import alive, pool_workers
from veilface.server.keystore import read_bundle, read_public_description, read_verify_key
from veilface.server.launch import start_services

pytestmark = pytest.mark.e2e


def port_is_free(url: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", urlsplit(url).port or 0))
        except OSError:
            return False
    return True


def test_end_to_end_on_real_processes(
    keyset: vc.KeySet,
    keys_dir: Path,
    tmp_path: Path,
    database: tuple[dict[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env, matcher_database = database
    data = tmp_path / "data"
    rng = np.random.default_rng(30)
    verify_key = read_verify_key(keys_dir / "public" / "signing.pub")
    services = start_services(keys_dir, data, operator_token=ADMIN_TOKEN, env=env)
    try:
        with httpx.Client(base_url=services.matcher_url, timeout=10.0) as http:
            assert http.get("/readyz").json() == {"database": True, "authority": True}
            published = http.get("/v1/keys/public", headers=auth()).json()
            bundle = vc.KeyBundle(
                vc.Role.PUBLIC, published["preset"], published["key_id"], base64.b64decode(published["bundle"])
            )
            vc.verify_public_bundle(
                bundle, vc.PublicDescription.from_dict(published["description"]), published["signature"], verify_key
            )
            client = vc.CkksClientCipher(bundle, model_id=MODEL_ID, dimension=DIMENSION)

            alice, bob = unit(rng), unit(rng)
            for subject, face in (("alice", alice), ("bob", bob)):
                response = http.put(f"/v1/subjects/{subject}/template", content=client.encrypt(face), headers=octets())
                assert response.status_code == 201, response.text

            def verify(subject: str, probe: bytes) -> httpx.Response:
                headers = octets(**{"X-Client-Nonce": "e2e-nonce-0123456789"})
                return http.post(f"/v1/subjects/{subject}/verify", content=probe, headers=headers)

            for subject, vector, expected in (("alice", near(rng, alice), True), ("alice", bob, False)):
                probe = client.encrypt(vector)
                response = verify(subject, probe)
                assert response.status_code == 200, response.text
                record = vc.DecisionRecord.from_dict(response.json())
                vc.verify_decision(
                    record,
                    verify_key,
                    client_nonce="e2e-nonce-0123456789",
                    probe_sha256=vc.probe_digest(probe),
                    key_id=bundle.key_id,
                )
                assert record.match is expected and record.subject_id == subject

            # A worker killed outright is replaced, and the request that found it gone is still served.
            (worker,) = pool_workers(services.matcher.pid)
            os.kill(worker, signal.SIGKILL)
            while alive(worker):
                time.sleep(0.05)
            assert verify("alice", client.encrypt(near(rng, alice))).json()["match"] is True
            assert pool_workers(services.matcher.pid) - {worker}

            scaled = verify("alice", unnormalised_ckks(client, 1.2 * alice, monkeypatch))
            assert scaled.status_code == 422 and scaled.json()["type"].endswith("/probe-not-normalised")

            assert http.delete("/v1/subjects/alice", headers=auth()).status_code == 204
            assert verify("alice", client.encrypt(alice)).status_code == 404
            assert http.get("/v1/subjects/bob", headers=auth()).status_code == 200
        workers = descendants(services.matcher.pid) | descendants(services.authority.pid)
        assert len(workers) >= 2  # each service's worker pool
        assert all(os.getpgid(pid) == services.matcher.pid for pid in descendants(services.matcher.pid))
    finally:
        services.stop()

    assert (services.matcher.process.returncode, services.authority.process.returncode) == (0, 0)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)
    assert port_is_free(services.matcher_url) and port_is_free(services.authority_url)

    markers = secret_markers(keyset)
    assert files_holding(keys_dir / "secret", markers)  # the scan finds the secret where it is
    assert sorted(p.name for p in (data / "matcher" / "keys").iterdir()) == ["evaluation", "public"]
    assert files_holding(data / "matcher", markers) == {}
    assert files_holding(data / "matcher.log", markers) == {}
    rows = database_values(matcher_database)
    assert b"bob" in rows and not any(marker in rows for marker in markers)


def test_plaintext_services_for_benchmarks(keys_dir: Path, tmp_path: Path) -> None:
    """start_services(plaintext=True) runs the same services with the stand-in ciphers; CKKS is refused."""
    key_id = read_public_description(keys_dir)[0].key_id
    client = vc.PlaintextClientCipher(key_id=key_id, model_id=MODEL_ID, dimension=DIMENSION)
    rng = np.random.default_rng(31)
    face = unit(rng)
    with start_services(keys_dir, tmp_path / "plain", operator_token=ADMIN_TOKEN, plaintext=True) as services:
        with httpx.Client(base_url=services.matcher_url, timeout=10.0) as http:
            assert (
                http.put("/v1/subjects/p/template", content=client.encrypt(face), headers=octets()).status_code == 201
            )
            headers = octets(**{"X-Client-Nonce": "plain-nonce-0123456789"})
            response = http.post("/v1/subjects/p/verify", content=client.encrypt(near(rng, face)), headers=headers)
            assert response.json()["match"] is True
            ckks = vc.CkksClientCipher(read_bundle(keys_dir, vc.Role.PUBLIC), model_id=MODEL_ID, dimension=DIMENSION)
            refused = http.post("/v1/subjects/p/verify", content=ckks.encrypt(face), headers=headers)
            assert refused.status_code == 413  # a CKKS envelope is far larger than a stand-in's
    assert services.matcher.process.returncode == 0


def test_serve_all_with_tls_generates_a_token_and_stops_on_sigterm(keys_dir: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    data = tmp_path / "all"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEILFACE_")}
    command = [sys.executable, "-m", "veilface.cli", "serve", "all"]
    command += ["--keys", str(keys_dir), "--data", str(data), "--port", "0"]
    command += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    supervisor = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert supervisor.stderr is not None
        lines: list[str] = []
        while not any(line.startswith("operator token in") for line in lines):
            line = supervisor.stderr.readline()
            assert line, f"serve all ended early: {lines[-5:]}"
            lines.append(line)
        matcher_url = next(line.split()[1] for line in lines if line.startswith("matcher "))
        assert matcher_url.startswith("https://127.0.0.1:")
        token_file = data / "operator.token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        with httpx.Client(base_url=matcher_url, verify=ssl.create_default_context(cafile=cert), timeout=10.0) as http:
            assert http.get("/readyz").status_code == 200
            assert http.get("/v1/keys/public", headers=auth(token)).status_code == 200
            assert http.get("/v1/keys/public", headers=auth(ADMIN_TOKEN)).status_code == 401
        services = descendants(supervisor.pid)
        assert len(services) >= 4  # two services, each with its worker pool
        assert not (data / "matcher" / "keys" / "secret").exists()
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0
    time.sleep(0.2)
    assert not any(alive(pid) for pid in services)


def test_a_lone_matcher_starts_reports_the_missing_authority_and_stops_cleanly(keys_dir: Path, tmp_path: Path) -> None:
    """`serve matcher --port P` without an authority: up, /readyz says which part is missing; SIGTERM frees all."""
    matcher_keys = tmp_path / "matcher-keys"
    for role in ("evaluation", "public"):
        shutil.copytree(keys_dir / role, matcher_keys / role)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEILFACE_")}
    env |= {
        "VEILFACE_OPERATOR_TOKENS": ADMIN_TOKEN,
        "VEILFACE_AUTHORITY_TOKEN": sf.AUTHORITY_TOKEN,
        "VEILFACE_AUTHORITY_URL": "http://127.0.0.1:9",  # discard port: nothing listens
        "VEILFACE_MATCHER_WORKERS": "1",
    }
    command = [sys.executable, "-m", "veilface.cli", "serve", "matcher", "--keys", str(matcher_keys)]
    command += ["--data", str(tmp_path / "data"), "--port", str(port)]
    matcher = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert matcher.poll() is None and time.monotonic() < deadline
            try:
                ready = httpx.get(url + "/readyz", timeout=5.0)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready.status_code == 503 and ready.json() == {"database": True, "authority": False}
        workers = pool_workers(matcher.pid)
        assert workers
    finally:
        matcher.send_signal(signal.SIGTERM)
        matcher.wait(30)
    assert matcher.returncode == 0 and port_is_free(url)
    time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)
