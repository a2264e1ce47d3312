"""Deployments for benchmarks and tests: fresh keys, the real matcher and authority processes on loopback.

``deployment`` starts one, with CKKS or with the plaintext stand-in ciphers (same services code, storage,
budgets, audit and signatures), through ``veilface.server.launch``: either service can then be killed,
frozen or restarted on its port while the other runs. ``pipelines`` starts the encrypted deployment and the
stand-in side by side under one key set, each with a veilface ``Client`` that counts bytes, for the service
benchmarks. Budgets are raised so that a run's own traffic is never refused, and the caller's ``VEILFACE_*``
variables do not reach the services: a run never touches a database or setting of the operator's.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

import veilface.crypto as vc
from veilface.client.api import Client
from veilface.protocol.face_models import DEFAULT_MODEL
from veilface.server.keystore import SIGNING_PUB_FILE, write_keyset
from veilface.server.launch import READY_TIMEOUT_S, RunningServices, ServiceProcess, spawn_services
from veilface.server.settings import sqlite_url

MODEL_ID = DEFAULT_MODEL.model_id
DIMENSION = DEFAULT_MODEL.dimension
THRESHOLD = DEFAULT_MODEL.default_threshold
PIPELINES = ("encrypted", "plaintext")
# Far above anything a run sends; the authority's defaults would refuse a load test within seconds.
BUDGET = 1_000_000_000
BUDGET_SETTINGS = ("PER_SUBJECT", "PER_TOKEN", "GLOBAL_PER_MINUTE", "PER_KEY")
STAGE_METRIC = "veilface_stage_duration_seconds"
OCTETS = {"Content-Type": "application/octet-stream"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def clean_environment() -> dict[str, str]:
    """This process's environment without any ``VEILFACE_`` setting of the caller's."""
    return {name: value for name, value in os.environ.items() if not name.startswith("VEILFACE_")}


def budgets() -> dict[str, str]:
    """Service settings under which the authority never refuses a run's own traffic."""
    return {f"VEILFACE_BUDGET_{name}": str(BUDGET) for name in BUDGET_SETTINGS}


@dataclass
class Deployment:
    """Keys on disk, the authority and the matcher running under them, and the tokens to talk to them."""

    root: Path
    keyset: vc.KeySet
    keys_dir: Path
    operator_token: str
    authority_token: str
    services: RunningServices
    matcher_database_url: str
    cipher: vc.ClientCipher  # encrypts for this deployment: CKKS under its public bundle, or the stand-in
    ready_s: float  # from spawning the services to the matcher's /readyz

    @property
    def matcher(self) -> ServiceProcess:
        return self.services.matcher

    @property
    def authority(self) -> ServiceProcess:
        return self.services.authority

    @property
    def matcher_keys(self) -> Path:
        """The matcher's own copy of the evaluation and public bundles."""
        return self.matcher.keys

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client of the matcher with the operator token (every scope)."""
        return httpx.Client(base_url=self.matcher.url, headers=bearer(self.operator_token), timeout=timeout)

    def readiness(self) -> tuple[int, dict[str, Any]]:
        return self.services.readiness()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until the matcher's /readyz answers 200 (database and authority both reachable)."""
        return self.services.wait_ready(timeout)

    def enrol(self, subjects: Mapping[str, bytes]) -> None:
        with self.client() as http:
            for subject, template in subjects.items():
                response = http.put(f"/v1/subjects/{subject}/template", content=template, headers=OCTETS)
                if response.status_code != 201:
                    raise vc.ServiceError(f"enrolling {subject} failed: {response.status_code} {response.text}")


@contextmanager
def deployment(
    root: Path,
    *,
    keyset: vc.KeySet | None = None,
    keys_dir: Path | None = None,
    workers: int = 1,
    plaintext: bool = False,
    operator_token: str | None = None,
    threshold: float | None = None,
    log_level: str | None = "warning",
    matcher_database_url: str | None = None,
    authority_database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Deployment]:
    """Both services on loopback under ``keyset`` (fresh default-model keys unless given), ready; stopped on
    exit. ``keys_dir`` holds ``keyset`` already (written under ``root/keys`` otherwise); data, logs and the
    SQLite databases go under ``root/data``. ``plaintext`` runs the stand-in ciphers; ``threshold`` sets the
    matcher's, ``log_level`` the services' (None: their default); ``env`` adds settings."""
    keyset = keyset or vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL_ID, dimension=DIMENSION)
    if keys_dir is None:
        keys_dir = root / "keys"
        write_keyset(keys_dir, keyset)
    data = root / "data"
    database_url = matcher_database_url or sqlite_url((data / "matcher" / "matcher.db").resolve())
    settings = {**budgets(), "VEILFACE_MATCHER_DATABASE_URL": database_url}
    if authority_database_url:
        settings["VEILFACE_AUTHORITY_DATABASE_URL"] = authority_database_url
    if threshold is not None:
        settings["VEILFACE_MATCH_THRESHOLD"] = repr(float(threshold))
    if log_level is not None:
        settings["VEILFACE_LOG_LEVEL"] = log_level
    operator_token = operator_token or secrets.token_urlsafe(32)
    authority_token = secrets.token_urlsafe(32)
    description = keyset.description
    cipher: vc.ClientCipher = (
        vc.PlaintextClientCipher(key_id=keyset.key_id, model_id=description.model_id, dimension=description.dimension)
        if plaintext
        else vc.CkksClientCipher(keyset.public, model_id=description.model_id, dimension=description.dimension)
    )
    started = time.perf_counter()
    services = spawn_services(
        keys_dir,
        data,
        operator_tokens=operator_token,
        workers=workers,
        env={**settings, **(env or {})},
        base_env=clean_environment(),
        authority_token=authority_token,
        plaintext=plaintext,
    )
    ready_s = time.perf_counter() - started
    with services:
        yield Deployment(
            root, keyset, keys_dir, operator_token, authority_token, services, database_url, cipher, ready_s
        )


# -- both pipelines side by side, for the service benchmarks -------------------------------------------


class CountingTransport(httpx.BaseTransport):
    """HTTP transport that remembers the body sizes of the last request and response per path."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.request_bytes: dict[str, int] = {}
        self.response_bytes: dict[str, int] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        route = _route(request.url.path)
        self.request_bytes[route] = len(request.read())
        response = self._inner.handle_request(request)
        self.response_bytes[route] = len(response.read())
        return response

    def close(self) -> None:
        self._inner.close()


def _route(path: str) -> str:
    """``/v1/subjects/<id>/verify`` -> ``verify``; other paths keep their last segment."""
    return path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Pipeline:
    """One running deployment (CKKS or the plaintext stand-in) and a client of it that counts bytes."""

    name: str
    deployment: Deployment
    client_cipher: vc.ClientCipher
    transport: CountingTransport
    client: Client

    @property
    def services(self) -> RunningServices:
        return self.deployment.services


@dataclass
class Pipelines:
    """A fresh key set on disk and the deployments named in ``pipelines`` started under it."""

    keyset: vc.KeySet
    keys_dir: Path
    token: str
    model_id: str
    dimension: int
    pipelines: dict[str, Pipeline]


@contextmanager
def pipelines(
    root: Path,
    *,
    preset: str,
    model_id: str,
    dimension: int,
    threshold: float,
    workers: int = 1,
    names: tuple[str, ...] = PIPELINES,
) -> Iterator[Pipelines]:
    """Fresh keys under ``root``, then a deployment per name in ``names`` ("encrypted", "plaintext"), ready,
    under one operator token and the matcher threshold the benchmark expects; stopped on exit."""
    keyset = vc.key_ceremony(preset, model_id=model_id, dimension=dimension)
    keys_dir = root / "keys"
    write_keyset(keys_dir, keyset)
    token = secrets.token_urlsafe(32)
    with ExitStack() as stack:
        running: dict[str, Pipeline] = {}
        for name in names:
            deployed = stack.enter_context(
                deployment(
                    root / name,
                    keyset=keyset,
                    keys_dir=keys_dir,
                    workers=workers,
                    plaintext=name == "plaintext",
                    operator_token=token,
                    threshold=threshold,
                    log_level=None,
                )
            )
            transport = CountingTransport()
            client = stack.enter_context(
                Client(
                    deployed.matcher.url,
                    token=token,
                    authority_key=keys_dir / vc.Role.PUBLIC.value / SIGNING_PUB_FILE,
                    transport=transport,
                )
            )
            # The encrypted pipeline encrypts under the bundle the client fetched and verified, as a device
            # would; the stand-in's envelopes only need the deployment's key_id, model_id and dimension.
            cipher = client.cipher() if name == "encrypted" else deployed.cipher
            running[name] = Pipeline(name, deployed, cipher, transport, client)
        yield Pipelines(keyset, keys_dir, token, model_id, dimension, running)


def matcher_stage_means(url: str, token: str) -> dict[str, float]:
    """Mean ms per stage the matcher itself timed (its /metrics), over every request it served.

    ``compare`` is the homomorphic step as the event loop waits for it (worker IPC included); ``authority``
    the round trip to the authority (decrypt, ledger, sign, HTTP).
    """
    response = httpx.get(f"{url}/metrics", headers=bearer(token), timeout=10.0)
    response.raise_for_status()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for metric in family.samples:
            stage = metric.labels.get("stage")
            if stage is not None and metric.name == f"{STAGE_METRIC}_sum":
                sums[stage] = metric.value
            elif stage is not None and metric.name == f"{STAGE_METRIC}_count":
                counts[stage] = metric.value
    return {stage: round(1000.0 * sums[stage] / counts[stage], 3) for stage in sorted(sums) if counts.get(stage)}
