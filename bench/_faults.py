"""Faults on demand for the reliability benchmark and tests: the services as restartable process groups,
a throwaway PostgreSQL cluster, and concurrent traffic whose every answer is timed.

The authority and the matcher are started here, each as its own process group on a loopback port this
process binds and hands over (the way an operator's supervisor would), with tokens the caller knows, so that
either can be killed, frozen or restarted on the same port with the same settings while the other runs.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import veilface.crypto as vc
from veilface.server import wire
from veilface.server.keystore import write_keyset
from veilface.server.launch import prepare_data_dirs
from veilface.server.settings import DEFAULT_THRESHOLDS, sqlite_url

MODEL_ID = "dlib-resnet-v1-128"
DIMENSION = 128
THRESHOLD = DEFAULT_THRESHOLDS[MODEL_ID]
# Far above what a run sends: the defaults would refuse a thousand enrolments from one token within the hour.
BUDGETS = {f"VEILFACE_BUDGET_{name}": "1000000000" for name in ("PER_SUBJECT", "PER_TOKEN", "GLOBAL_PER_MINUTE")}
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
GENUINE_NOISE = 0.02  # per coordinate: cosine ~0.975 at 128-D, far above the threshold


# -- processes ------------------------------------------------------------------------------------------


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # The command name may hold spaces or parentheses; the fields after its closing one do not.
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int) -> list[int]:
    """Live processes (zombies excluded) in process group ``pgid``, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def process_kind(pid: int) -> str:
    """What a service's process is: a pool "worker", multiprocessing's "resource-tracker", or the "service"."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "exited"
    if b"resource_tracker" in cmdline:
        return "resource-tracker"
    return "worker" if b"spawn_main" in cmdline else "service"


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the group (a service and its worker pool), in MB."""
    total_kb = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/status") as fh:
                total_kb += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return round(total_kb / 1024.0, 1)


def rebind(port: int) -> bool:
    """Whether a restarting service could listen on ``port`` now: bound as uvicorn and the launcher bind
    (SO_REUSEADDR, so connections of the old process still in TIME_WAIT do not count)."""
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


class Service:
    """One service as its own process group, listening on a socket this process binds and hands over."""

    def __init__(self, name: str, *, keys: Path, data: Path, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.keys = keys
        self.data = data
        self.env = env
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"the {self.name} was never started"
        return self.process.pid

    def start(self) -> None:
        """Start on the same port as before (a free one the first time); return once it answers /healthz."""
        # Binding here, not in the child, means the port is known before the child runs and a restart
        # fails loudly if anything still holds it.
        sock = socket.create_server(("127.0.0.1", self.port))
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        command = [sys.executable, "-m", "veilface.cli", "serve", self.name, "--keys", str(self.keys)]
        command += ["--data", str(self.data), "--fd", str(sock.fileno()), "--exit-with-parent", str(os.getpid())]
        try:
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    command,
                    env=self.env,
                    pass_fds=(sock.fileno(),),
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        finally:
            sock.close()
        self.starts += 1
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self.process.poll() if self.process else None
            if code is not None:
                raise vc.ServiceError(f"the {self.name} exited during start-up (status {code}); see {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise vc.ServiceError(f"the {self.name} did not start within {READY_TIMEOUT_S:.0f} s; see {self.log_path}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM the service (it stops its own workers); its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash or an OOM kill of the host would."""
        assert self.process is not None
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        deadline = time.monotonic() + 5.0
        while group_members(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP (or SIGCONT) the group: a hung host that still accepts connections into its backlog."""
        os.killpg(self.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def close(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                pass
        if group_members(self.pid):
            self.kill()


@dataclass
class TemplatePool:
    """A few real CKKS templates with a genuine probe each, encrypted once and reused (encryption is the
    slow part); each subject still gets its own id."""

    templates: list[bytes]
    genuine: list[bytes]

    def impostor(self, index: int) -> bytes:
        return self.genuine[(index + 1) % len(self.genuine)]


def template_pool(cipher: vc.ClientCipher, size: int, rng: np.random.Generator) -> TemplatePool:
    templates, genuine = [], []
    for _ in range(size):
        vector = rng.normal(size=cipher.dimension)
        templates.append(cipher.encrypt(vector / np.linalg.norm(vector)))
        probe = vector / np.linalg.norm(vector) + GENUINE_NOISE * rng.normal(size=cipher.dimension)
        genuine.append(cipher.encrypt(probe))
    return TemplatePool(templates, genuine)


@dataclass
class Deployment:
    """Fresh keys, the authority and the matcher, each restartable on its port; tokens known to the caller."""

    root: Path
    keyset: vc.KeySet
    keys_dir: Path
    matcher_keys: Path
    operator_token: str
    authority_token: str
    authority: Service
    matcher: Service
    matcher_database_url: str
    cipher: vc.CkksClientCipher

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.matcher.url, headers=bearer(self.operator_token), timeout=timeout)

    def readiness(self) -> tuple[int, dict[str, Any]]:
        try:
            response = httpx.get(self.matcher.url + "/readyz", timeout=10.0)
        except httpx.HTTPError:
            return 0, {}
        return response.status_code, response.json()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until the matcher's /readyz answers 200 (database and authority both reachable)."""
        started = time.monotonic()
        while self.readiness()[0] != 200:
            if time.monotonic() - started > timeout:
                raise vc.ServiceError(f"the matcher was not ready within {timeout:.0f} s")
            time.sleep(0.05)
        return time.monotonic() - started

    def enrol(self, subjects: dict[str, bytes]) -> None:
        with self.client() as http:
            for subject, template in subjects.items():
                response = http.put(f"/v1/subjects/{subject}/template", content=template, headers=OCTETS)
                if response.status_code != 201:
                    raise vc.ServiceError(f"enrolling {subject} failed: {response.status_code} {response.text}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


OCTETS = {"Content-Type": "application/octet-stream"}


def service_env(extra: dict[str, str]) -> dict[str, str]:
    """The services' environment: this one without any VEILFACE_ setting of the caller's, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("VEILFACE_")}
    return {**env, **BUDGETS, "VEILFACE_LOG_LEVEL": "warning", **extra}


@contextmanager
def deployment(
    root: Path,
    *,
    keyset: vc.KeySet | None = None,
    workers: int = 1,
    matcher_database_url: str | None = None,
    authority_database_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    """Both services on loopback under ``keyset`` (fresh keys by default), ready; stopped on exit."""
    keyset = keyset or vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL_ID, dimension=DIMENSION)
    keys_dir = root / "keys"
    write_keyset(keys_dir, keyset)
    matcher_data, matcher_keys, authority_data = prepare_data_dirs(keys_dir, root / "data")
    operator_token, authority_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    shared = service_env({"VEILFACE_AUTHORITY_TOKEN": authority_token, **(env or {})})
    authority_env = dict(shared)
    if authority_database_url:
        authority_env["VEILFACE_AUTHORITY_DATABASE_URL"] = authority_database_url
    authority = Service(
        "authority", keys=keys_dir, data=authority_data, env=authority_env, log_path=root / "authority.log"
    )
    database_url = matcher_database_url or sqlite_url(matcher_data / "matcher.db")
    matcher_env = {
        **shared,
        "VEILFACE_OPERATOR_TOKENS": operator_token,
        "VEILFACE_MATCHER_WORKERS": str(workers),
        "VEILFACE_MATCHER_DATABASE_URL": database_url,
    }
    matcher = Service("matcher", keys=matcher_keys, data=matcher_data, env=matcher_env, log_path=root / "matcher.log")
    try:
        authority.start()
        matcher.env["VEILFACE_AUTHORITY_URL"] = authority.url
        matcher.start()
        cipher = vc.CkksClientCipher(keyset.public, model_id=MODEL_ID, dimension=DIMENSION)
        deployed = Deployment(
            root,
            keyset,
            keys_dir,
            matcher_keys,
            operator_token,
            authority_token,
            authority,
            matcher,
            database_url,
            cipher,
        )
        deployed.wait_ready()
        yield deployed
    finally:
        matcher.close()
        authority.close()


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


def verifications(work: list[tuple[str, bytes, bool]]) -> Send:
    """Verify (subject, probe, expected bit) in turn; a 200 counts as ok only with the expected bit."""

    def send(http: httpx.Client, number: int) -> tuple[httpx.Response, bool]:
        subject, probe, expected = work[number % len(work)]
        headers = {**OCTETS, wire.CLIENT_NONCE: secrets.token_urlsafe(24)}
        response = http.post(f"/v1/subjects/{subject}/verify", content=probe, headers=headers)
        return response, response.status_code == 200 and json_field(response, "match") is expected

    return send


def verification_work(dep: Deployment, pool: TemplatePool, prefix: str) -> list[tuple[str, bytes, bool]]:
    """Enrol one subject per pool template; genuine and impostor probes for each."""
    subjects = {f"{prefix}-{i}": template for i, template in enumerate(pool.templates)}
    dep.enrol(subjects)
    work = []
    for index, subject in enumerate(subjects):
        work += [(subject, pool.genuine[index], True), (subject, pool.impostor(index), False)]
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


class PostgresUnavailableError(Exception):
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
