"""Start the authority and the matcher as separate processes on loopback, restart them, and stop them.

The matcher gets a data directory of its own holding copies of only ``evaluation/`` and ``public/``; the
authority reads the key directory (with ``secret/``) and keeps its data apart. The launcher binds each
listening socket itself and hands it to its service (no port race, and a restart binds the same port
again), generates the internal matcher-authority token unless given one, and the services exit on their
own if the launcher dies. Each service leads its own process group, so that it can be signalled together
with its worker pool.

``start_services`` is what ``veilface demo``, the benchmarks and the end-to-end tests use::

    with start_services(keys, data, operator_token=token) as services:
        httpx.get(services.matcher_url + "/readyz")

Each of ``services.matcher`` and ``services.authority`` is a ``ServiceProcess``: it can be killed, frozen and
started again on its port while the other runs (the reliability harness, ``veilface.bench.harness``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

import httpx
import psutil

from veilface.crypto import ConfigurationError, Role, ServiceError
from veilface.server.files import private_directory

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
KILL_TIMEOUT_S = 5.0
#: Each service runs as ``python -m veilface.cli serve NAME`` in this interpreter (named, never imported here).
SERVICES_MODULE = "veilface.cli serve"
#: The same services with the plaintext stand-in ciphers: NO ENCRYPTION, for tests and benchmarks only.
STANDIN_MODULE = "veilface.server.standin"


def group_members(pgid: int) -> list[int]:
    """Live processes (zombies excluded) in process group ``pgid``: a service, its workers and helpers."""
    members = []
    for process in psutil.process_iter(["status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process.pid)
        except ProcessLookupError:
            continue
    return members


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


class ServiceProcess:
    """One service (``python -m MODULE NAME``) as its own process group, on a socket the launcher binds.

    ``start`` binds the service's port (a free one while it is 0) and returns without waiting; starting
    again after a kill or a stop reuses that port and the same settings.
    """

    def __init__(
        self,
        name: str,
        *,
        keys: Path,
        data: Path,
        env: Mapping[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        module: str = SERVICES_MODULE,
        extra: Sequence[str] = (),
        tls: bool = False,
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.keys = keys
        self.data = data
        self.env = dict(env)
        self.host = host
        self.port = port
        self.module = module
        self.extra = list(extra)
        self.tls = tls
        self.log_path = log_path
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://[{self.host}]:{self.port}" if ":" in self.host else f"{scheme}://{self.host}:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise ServiceError(f"the {self.name} was never started")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        """Bind the port and start the service in a new process group; it answers once its app is built."""
        sock = _listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            *self.module.split(),
            self.name,
            "--keys",
            str(self.keys),
            "--data",
            str(self.data),
        ]
        command += ["--fd", str(sock.fileno()), "--exit-with-parent", str(os.getpid()), *self.extra]
        output: IO[bytes] | None = self.log_path.open("ab") if self.log_path else None
        try:
            self._process = subprocess.Popen(
                command,
                env=self.env,
                pass_fds=(sock.fileno(),),
                stdout=output,
                stderr=output,
                stdin=subprocess.DEVNULL,
                # Its own process group, so that it can be signalled with its workers (killpg).
                start_new_session=True,
            )
        finally:
            if output is not None:
                output.close()
            sock.close()
        self.starts += 1

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _see_log(self) -> str:
        return f"; see {self.log_path}" if self.log_path else ""

    def check_started(self) -> None:
        """Raise a ServiceError naming the log if the service has exited."""
        code = self.process.poll()
        if code is not None:
            raise ServiceError(f"the {self.name} exited during start-up (status {code}){self._see_log()}")

    def wait_healthy(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until the service answers ``/healthz``: its app is built (what it depends on may not be)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self.check_started()
            try:
                if httpx.get(self.url + "/healthz", timeout=2.0, verify=not self.tls).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise ServiceError(f"the {self.name} did not start within {timeout:.0f} s{self._see_log()}")

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM the service (it stops its own workers) and wait for its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash or the host's OOM killer would."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while group_members(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP (or SIGCONT) the group: a hung host that still accepts connections into its backlog."""
        os.killpg(self.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM; whatever of its group is still there after ``timeout`` (or after it exited) is killed."""
        if self._process is None:
            return
        try:
            self.terminate(timeout)
        except subprocess.TimeoutExpired:
            pass
        if self._process.poll() is None or group_members(self.pid):
            self.kill()


class RunningServices:
    """Both services, started; a context manager that stops them on exit."""

    def __init__(self, authority: ServiceProcess, matcher: ServiceProcess, *, data_dir: Path) -> None:
        self.authority = authority
        self.matcher = matcher
        self.data_dir = data_dir

    @property
    def matcher_url(self) -> str:
        return self.matcher.url

    @property
    def authority_url(self) -> str:
        return self.authority.url

    def readiness(self, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
        """The matcher's ``/readyz`` status and body; ``(0, {})`` when it does not answer."""
        # Our own child on loopback, possibly with a self-signed certificate: only readiness is asked here.
        try:
            response = httpx.get(self.matcher_url + "/readyz", timeout=timeout, verify=not self.matcher.tls)
        except httpx.HTTPError:
            return 0, {}
        try:
            body = response.json()
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until the matcher's ``/readyz`` answers 200 (its database and the authority reachable)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            for service in (self.authority, self.matcher):
                service.check_started()
            if self.readiness(timeout=3.0)[0] == 200:
                return time.monotonic() - started
            time.sleep(0.05)
        raise ServiceError(f"the services were not ready within {timeout:.0f} s")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the matcher, then the authority."""
        for service in (self.matcher, self.authority):
            service.stop(timeout)

    def serve_forever(self) -> int:
        """Block until SIGTERM/SIGINT (then stop both, return 0) or until a service dies (return 1)."""
        stopping = threading.Event()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not stopping.is_set():
                if not (self.matcher.running() and self.authority.running()):
                    break
                stopping.wait(0.2)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0 if stopping.is_set() else 1

    def __enter__(self) -> RunningServices:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def prepare_data_dirs(keys_dir: Path, data_dir: Path) -> tuple[Path, Path, Path]:
    """DATA/matcher (with keys/ holding copies of evaluation/ and public/ only) and DATA/authority."""
    if not (keys_dir / Role.SECRET.value).is_dir():
        raise ConfigurationError(f"{keys_dir} has no {Role.SECRET.value}/ directory; run 'veilface keys init'")
    private_directory(data_dir)
    matcher_data, authority_data = data_dir / "matcher", data_dir / "authority"
    matcher_keys = matcher_data / "keys"
    matcher_data.mkdir(mode=0o700, exist_ok=True)
    for role in (Role.EVALUATION, Role.PUBLIC):
        shutil.copytree(keys_dir / role.value, matcher_keys / role.value, dirs_exist_ok=True)
    authority_data.mkdir(mode=0o700, exist_ok=True)
    return matcher_data, matcher_keys, authority_data


def spawn_services(
    keys_dir: Path,
    data_dir: Path,
    *,
    operator_tokens: str,
    host: str = "127.0.0.1",
    matcher_port: int = 0,
    authority_port: int = 0,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    authority_token: str | None = None,
    plaintext: bool = False,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    log_to_files: bool = True,
    ready_timeout: float = READY_TIMEOUT_S,
) -> RunningServices:
    """Start the authority (always on 127.0.0.1) and the matcher; return once the matcher is ready.

    The services' environment is ``base_env`` (default: this process's), the operator tokens and worker
    count, then ``env`` (budgets, database URLs, thresholds; it may override ``VEILFACE_OPERATOR_TOKENS``),
    then the internal token (``authority_token``, generated by default) and the authority's URL.
    """
    keys_dir, data_dir = Path(keys_dir).resolve(), Path(data_dir).resolve()
    matcher_data, matcher_keys, authority_data = prepare_data_dirs(keys_dir, data_dir)
    child_env = dict(os.environ if base_env is None else base_env)
    child_env.update({"VEILFACE_OPERATOR_TOKENS": operator_tokens, "VEILFACE_MATCHER_WORKERS": str(workers)})
    child_env.update(env or {})
    child_env["VEILFACE_AUTHORITY_TOKEN"] = authority_token or secrets.token_urlsafe(32)
    module = STANDIN_MODULE if plaintext else SERVICES_MODULE
    tls = []
    if ssl_certfile and ssl_keyfile:
        tls = ["--ssl-certfile", str(ssl_certfile), "--ssl-keyfile", str(ssl_keyfile)]

    def log(name: str) -> Path | None:
        return data_dir / f"{name}.log" if log_to_files else None

    authority = ServiceProcess(
        "authority",
        keys=keys_dir,
        data=authority_data,
        env=child_env,
        port=authority_port,
        module=module,
        log_path=log("authority"),
    )
    matcher = ServiceProcess(
        "matcher",
        keys=matcher_keys,
        data=matcher_data,
        env=child_env,
        host=host,
        port=matcher_port,
        module=module,
        extra=tls,
        tls=bool(tls),
        log_path=log("matcher"),
    )
    services = RunningServices(authority, matcher, data_dir=data_dir)
    try:
        authority.start()
        matcher.env["VEILFACE_AUTHORITY_URL"] = authority.url
        matcher.start()
        services.wait_ready(ready_timeout)
    except BaseException:
        services.stop()
        raise
    return services


def start_services(
    keys_dir: Path,
    data_dir: Path,
    *,
    operator_token: str,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    plaintext: bool = False,
) -> RunningServices:
    """Authority and matcher as real uvicorn processes on free loopback ports, ready when this returns.

    ``operator_token`` gets every scope; ``plaintext=True`` (tests and benchmarks only) runs both with the
    plaintext stand-in ciphers (``veilface.server.standin``). Logs go to ``DATA/matcher.log`` and
    ``DATA/authority.log``. Use it as a context manager, or call ``.stop()``.
    """
    return spawn_services(
        keys_dir, data_dir, operator_tokens=operator_token, workers=workers, env=env, plaintext=plaintext
    )
