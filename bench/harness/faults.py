"""Faults on demand for the reliability benchmark and tests, and the traffic that watches them.

Concurrent clients whose every answer is kept with its times (``Traffic``), what they send (enrolments,
verifications of a pool of real templates and probes), a throwaway PostgreSQL cluster of the run's own to
stop and start, and a check that a stopped service's port binds again. Killing, freezing and restarting the
services themselves is ``Deployment.matcher`` / ``.authority`` (``veilface.server.launch.ServiceProcess``).
"""

from __future__ import annotations

import functools
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import veilface.crypto as vc
from veilface.bench.harness.deployment import OCTETS, Deployment, bearer
from veilface.protocol import headers as wire

__all__ = [
    "GENUINE_NOISE",
    "Answer",
    "PostgresUnavailableError",
    "PrivatePostgres",
    "Send",
    "TemplatePool",
    "Traffic",
    "Work",
    "json_field",
    "problem_slug",
    "rebind",
    "summarise",
    "template_pool",
    "unit",
    "verification_work",
    "verifications",
]

GENUINE_NOISE = 0.02  # per coordinate: cosine ~0.975 at 128-D, far above the threshold


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


@dataclass
class TemplatePool:
    """A few real CKKS templates, encrypted once and reused (each subject still gets its own id), and a
    genuine probe embedding for each, encrypted afresh for every verification (:meth:`genuine_probe`): the
    matcher answers a probe's bytes once. ``genuine`` holds one encryption of each, as seeds for fuzzing."""

    cipher: vc.ClientCipher
    templates: list[bytes]
    genuine_embeddings: list[np.ndarray]
    genuine: list[bytes]
    lock: threading.Lock = field(default_factory=threading.Lock)  # the cipher, shared by client threads

    def genuine_probe(self, index: int) -> bytes:
        with self.lock:
            return self.cipher.encrypt(self.genuine_embeddings[index])

    def impostor_probe(self, index: int) -> bytes:
        """A fresh probe of the next template's face: an impostor for template ``index``."""
        return self.genuine_probe((index + 1) % len(self.genuine_embeddings))


def template_pool(cipher: vc.ClientCipher, size: int, rng: np.random.Generator) -> TemplatePool:
    templates, embeddings = [], []
    for _ in range(size):
        vector = unit(rng.normal(size=cipher.dimension))
        templates.append(cipher.encrypt(vector))
        embeddings.append(vector + GENUINE_NOISE * rng.normal(size=cipher.dimension))
    return TemplatePool(cipher, templates, embeddings, [cipher.encrypt(vector) for vector in embeddings])


def rebind(port: int) -> bool:
    """Whether a restarting service could listen on ``port`` now: bound as uvicorn and the launcher bind
    (SO_REUSEADDR, so connections of the old process still in TIME_WAIT do not count)."""
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


# -- traffic --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request as a client saw it: monotonic send and answer times, status (0: no HTTP answer)."""

    sent: float
    done: float
    status: int
    problem: str  # the problem type's last segment, for 4xx/5xx
    ok: bool  # the application's check of a 2xx answer (the right bit, the enrolment acknowledged)

    @property
    def seconds(self) -> float:
        return self.done - self.sent


Send = Callable[[httpx.Client, int], tuple[httpx.Response, bool]]


def problem_slug(response: httpx.Response) -> str:
    if response.status_code < 400:
        return ""
    try:
        body = response.json()
    except ValueError:
        return "not-json"
    return str(body.get("type", "")).rsplit("/", 1)[-1] if isinstance(body, dict) else "not-an-object"


class Traffic:
    """``clients`` threads, each with its own keep-alive connection, calling ``send(http, n)`` back to back
    (``n`` numbers the requests of the whole run) until stopped; every answer is kept with its times."""

    def __init__(self, url: str, token: str, send: Send, *, clients: int, timeout: float = 30.0) -> None:
        self._url, self._token, self._send, self._timeout = url, token, send, timeout
        self._numbers = itertools.count()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self._in_flight = 0
        self._threads = [threading.Thread(target=self._client, name=f"traffic-{i}") for i in range(clients)]

    def _client(self) -> None:
        with httpx.Client(base_url=self._url, headers=bearer(self._token), timeout=self._timeout) as http:
            while not self._stop.is_set():
                with self._lock:
                    number = next(self._numbers)
                    self._in_flight += 1
                sent = time.monotonic()
                try:
                    response, ok = self._send(http, number)
                    answer = Answer(sent, time.monotonic(), response.status_code, problem_slug(response), ok)
                except httpx.HTTPError:
                    answer = Answer(sent, time.monotonic(), 0, "", False)
                with self._lock:
                    self._in_flight -= 1
                    self.answers.append(answer)
                if answer.status == 0:
                    time.sleep(0.02)  # the service is gone: do not spin while it is down

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def count(self, predicate: Callable[[Answer], bool]) -> int:
        with self._lock:
            return sum(1 for answer in self.answers if predicate(answer))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.answers


def json_field(response: httpx.Response, name: str) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


#: Verifications to send: (subject, a fresh probe on each call, the expected bit).
Work = list[tuple[str, Callable[[], bytes], bool]]


def verifications(work: Work) -> Send:
    """Verify (subject, fresh probe, expected bit) in turn; a 200 counts as ok only with the expected bit."""

    def send(http: httpx.Client, number: int) -> tuple[httpx.Response, bool]:
        subject, probe, expected = work[number % len(work)]
        headers = {**OCTETS, wire.CLIENT_NONCE: secrets.token_urlsafe(24)}
        response = http.post(f"/v1/subjects/{subject}/verify", content=probe(), headers=headers)
        return response, response.status_code == 200 and json_field(response, "match") is expected

    return send


def verification_work(dep: Deployment, pool: TemplatePool, prefix: str) -> Work:
    """Enrol one subject per pool template; genuine and impostor probes for each, encrypted afresh per call."""
    subjects = {f"{prefix}-{i}": template for i, template in enumerate(pool.templates)}
    dep.enrol(subjects)
    work: Work = []
    for index, subject in enumerate(subjects):
        work += [
            (subject, functools.partial(pool.genuine_probe, index), True),
            (subject, functools.partial(pool.impostor_probe, index), False),
        ]
    return work


def summarise(answers: list[Answer]) -> dict[str, Any]:
    statuses = Counter(str(answer.status) for answer in answers)
    return {
        "requests": len(answers),
        "statuses": dict(sorted(statuses.items())),
        "problems": dict(sorted(Counter(a.problem for a in answers if a.problem).items())),
        "not_ok": sum(1 for answer in answers if not answer.ok),
        "max_s": round(max((a.seconds for a in answers), default=0.0), 3),
    }


class PostgresUnavailableError(vc.ServiceError):
    """No PostgreSQL server binaries here, or no way to run them (root without a postgres user)."""


class PrivatePostgres:
    """A throwaway PostgreSQL cluster of this run's own (initdb, loopback, a free port): stopping it cannot
    disturb any other database server, test or engineer on the machine."""

    def __init__(self) -> None:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
        found = str(candidates[-1]) if candidates else shutil.which("pg_ctl")
        if found is None:
            raise PostgresUnavailableError("no PostgreSQL server binaries (pg_ctl) on this machine")
        self._bin = Path(found).parent
        # initdb refuses to run as root: run the cluster as the postgres user then.
        self._as: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise PostgresUnavailableError("running as root without runuser to start PostgreSQL as postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="veilface-pg-"))
        if self._as:
            shutil.chown(self.root, user="postgres")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "veilface", "--no-sync", "-E", "UTF8")
        self.url = f"postgresql+psycopg://veilface@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        try:
            subprocess.run([*self._as, str(self._bin / tool), *args], check=True, capture_output=True, timeout=120)
        except (subprocess.CalledProcessError, OSError) as exc:
            output = getattr(exc, "stderr", b"") or b""
            raise PostgresUnavailableError(f"{tool} failed: {output.decode(errors='replace')[-300:]}") from None

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.root / "data"), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: sessions are cut, as when a database server is restarted under its clients."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        try:
            self.stop()
        except PostgresUnavailableError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)
