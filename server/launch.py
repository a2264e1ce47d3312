"""Start the authority and the matcher as separate processes on loopback, and stop them.

The matcher gets a data directory of its own holding copies of only ``evaluation/`` and ``public/``; the
authority reads the key directory (with ``secret/``) and keeps its data apart. The supervisor binds the
listening sockets itself and hands them to the services (no port race), generates the internal
matcher-authority token, and the services exit on their own if the supervisor dies.

``start_services`` is what ``veilface demo``, the benchmarks and the end-to-end tests use::

    with start_services(keys, data, operator_token=token) as services:
        httpx.get(services.matcher_url + "/readyz")
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
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

import httpx

from veilface.crypto import ConfigurationError, Role, ServiceError

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def pid(self) -> int:
        return self.process.pid


class RunningServices:
    """Both services, started and ready; a context manager that stops them on exit."""

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

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the matcher, then the authority; kill whichever has not exited within ``timeout``."""
        for service in (self.matcher, self.authority):
            _terminate(service.process, timeout)

    def serve_forever(self) -> int:
        """Block until SIGTERM/SIGINT (then stop both, return 0) or until a service dies (return 1)."""
        stopping = threading.Event()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not stopping.is_set():
                if any(s.process.poll() is not None for s in (self.matcher, self.authority)):
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


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


def _url(scheme: str, host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def prepare_data_dirs(keys_dir: Path, data_dir: Path) -> tuple[Path, Path, Path]:
    """DATA/matcher (with keys/ holding copies of evaluation/ and public/ only) and DATA/authority."""
    if not (keys_dir / Role.SECRET.value).is_dir():
        raise ConfigurationError(f"{keys_dir} has no {Role.SECRET.value}/ directory; run 'veilface keys init'")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
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
    env: dict[str, str] | None = None,
    plaintext: bool = False,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    log_to_files: bool = True,
    ready_timeout: float = READY_TIMEOUT_S,
) -> RunningServices:
    """Start the authority (always on 127.0.0.1) and the matcher; return once the matcher is ready.

    ``env`` is added to the services' environment (budgets, database URLs, thresholds); it may override
    ``VEILFACE_OPERATOR_TOKENS`` but not the internal token or the authority's URL, which this sets.
    """
    keys_dir, data_dir = Path(keys_dir).resolve(), Path(data_dir).resolve()
    matcher_data, matcher_keys, authority_data = prepare_data_dirs(keys_dir, data_dir)
    # Each service is `veilface serve NAME` (python -m veilface.cli, in this interpreter), or the stand-in's.
    entry = ["-m", "veilface.server._plaintext"] if plaintext else ["-m", "veilface.cli", "serve"]
    authority_sock = _listen("127.0.0.1", authority_port)
    matcher_sock = _listen(host, matcher_port)
    authority_url = _url("http", "127.0.0.1", authority_sock)
    matcher_url = _url("https" if ssl_certfile else "http", host, matcher_sock)
    child_env = dict(os.environ)
    child_env.update({"VEILFACE_OPERATOR_TOKENS": operator_tokens, "VEILFACE_MATCHER_WORKERS": str(workers)})
    child_env.update(env or {})
    child_env.update({"VEILFACE_AUTHORITY_TOKEN": secrets.token_urlsafe(32), "VEILFACE_AUTHORITY_URL": authority_url})

    def start(name: str, keys: Path, data: Path, sock: socket.socket, extra: list[str]) -> ServiceProcess:
        command = [sys.executable, *entry, name, "--keys", str(keys), "--data", str(data)]
        command += ["--fd", str(sock.fileno()), "--exit-with-parent", str(os.getpid()), *extra]
        log_path = data_dir / f"{name}.log" if log_to_files else None
        output: IO[bytes] | None = log_path.open("ab") if log_path else None
        try:
            process = subprocess.Popen(
                command,
                env=child_env,
                pass_fds=(sock.fileno(),),
                stdout=output,
                stderr=output,
                stdin=subprocess.DEVNULL,
                # Each service leads its own process group, so it can be signalled with its workers (killpg).
                start_new_session=True,
            )
        finally:
            if output is not None:
                output.close()
            sock.close()
        url = authority_url if name == "authority" else matcher_url
        return ServiceProcess(name, url, process, log_path)

    tls = (
        ["--ssl-certfile", str(ssl_certfile), "--ssl-keyfile", str(ssl_keyfile)] if ssl_certfile and ssl_keyfile else []
    )
    authority = start("authority", keys_dir, authority_data, authority_sock, [])
    try:
        matcher = start("matcher", matcher_keys, matcher_data, matcher_sock, tls)
    except BaseException:
        _terminate(authority.process, STOP_TIMEOUT_S)
        raise
    services = RunningServices(authority, matcher, data_dir=data_dir)
    try:
        _wait_ready(services, ready_timeout, tls=bool(tls))
    except BaseException:
        services.stop()
        raise
    return services


def _wait_ready(services: RunningServices, timeout: float, *, tls: bool) -> None:
    deadline = time.monotonic() + timeout
    # Our own child on loopback, possibly with a self-signed certificate: only readiness is asked here.
    with httpx.Client(timeout=3.0, verify=not tls) as client:
        while time.monotonic() < deadline:
            for service in (services.authority, services.matcher):
                code = service.process.poll()
                if code is not None:
                    where = f"; see {service.log_path}" if service.log_path else ""
                    raise ServiceError(f"the {service.name} exited during start-up (status {code}){where}")
            try:
                if client.get(services.matcher_url + "/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise ServiceError(f"the services were not ready within {timeout:.0f} s")


def start_services(
    keys_dir: Path,
    data_dir: Path,
    *,
    operator_token: str,
    workers: int = 1,
    env: dict[str, str] | None = None,
    plaintext: bool = False,
) -> RunningServices:
    """Authority and matcher as real uvicorn processes on free loopback ports, ready when this returns.

    ``operator_token`` gets every scope; ``plaintext=True`` (benchmarks only) runs both with the plaintext
    stand-in ciphers. Logs go to ``DATA/matcher.log`` and ``DATA/authority.log``. Use it as a context
    manager, or call ``.stop()``.
    """
    return spawn_services(
        keys_dir, data_dir, operator_tokens=operator_token, workers=workers, env=env, plaintext=plaintext
    )
