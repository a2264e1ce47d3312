"""What the service benchmarks share: fresh keys, both pipelines' services, byte counts, RSS, progress.

Every service benchmark makes a fresh key set in a temporary directory, starts the real matcher and
authority processes twice (once with CKKS, once with the plaintext stand-in ciphers, under the same keys,
storage, budgets, audit and signatures), and stops them at the end. Budgets are raised so that the
benchmark's own traffic is never refused.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import veilface.crypto as vc
from veilface.client.api import Client
from veilface.server.keystore import SIGNING_PUB_FILE, write_keyset
from veilface.server.launch import RunningServices, start_services

PIPELINES = ("encrypted", "plaintext")
# Far above anything a benchmark sends; the authority's defaults would refuse a load test within seconds.
BENCH_BUDGET = 1_000_000_000
BUDGET_SETTINGS = ("PER_SUBJECT", "PER_TOKEN", "GLOBAL_PER_MINUTE", "PER_KEY")
STAGE_METRIC = "veilface_stage_duration_seconds"


def bench_env(threshold: float) -> dict[str, str]:
    """Service settings for a benchmark: budgets that never refuse it, and the threshold it expects."""
    env = {f"VEILFACE_BUDGET_{name}": str(BENCH_BUDGET) for name in BUDGET_SETTINGS}
    env["VEILFACE_MATCH_THRESHOLD"] = repr(float(threshold))
    return env


def stderr_progress() -> Progress:
    """A progress display on standard error, so standard output holds only the markdown table."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


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
    """One running deployment (CKKS or the plaintext stand-in) and what a client needs to talk to it."""

    name: str
    services: RunningServices
    client_cipher: vc.ClientCipher
    ready_s: float
    transport: CountingTransport
    client: Client


@dataclass
class Deployment:
    """A fresh key set on disk and both pipelines started under it."""

    keyset: vc.KeySet
    keys_dir: Path
    token: str
    model_id: str
    dimension: int
    pipelines: dict[str, Pipeline]


@contextmanager
def deployment(
    root: Path,
    *,
    preset: str,
    model_id: str,
    dimension: int,
    threshold: float,
    workers: int = 1,
    names: tuple[str, ...] = PIPELINES,
) -> Iterator[Deployment]:
    """Fresh keys under ``root``, then the services of each pipeline in ``names``, ready; stopped on exit."""
    keyset = vc.key_ceremony(preset, model_id=model_id, dimension=dimension)
    keys_dir = root / "keys"
    write_keyset(keys_dir, keyset)
    token = secrets.token_urlsafe(32)
    env = bench_env(threshold)
    with ExitStack() as stack:
        pipelines: dict[str, Pipeline] = {}
        for name in names:
            started = time.perf_counter()
            services = stack.enter_context(
                start_services(
                    keys_dir,
                    root / f"data-{name}",
                    operator_token=token,
                    workers=workers,
                    env=env,
                    plaintext=name == "plaintext",
                )
            )
            ready_s = time.perf_counter() - started
            transport = CountingTransport()
            client = stack.enter_context(
                Client(
                    services.matcher_url,
                    token=token,
                    authority_key=keys_dir / vc.Role.PUBLIC.value / SIGNING_PUB_FILE,
                    transport=transport,
                )
            )
            # The encrypted pipeline encrypts under the bundle the client fetched and verified, as a device
            # would; the stand-in's envelopes only need the deployment's key_id, model_id and dimension.
            cipher: vc.ClientCipher = (
                client.cipher()
                if name == "encrypted"
                else vc.PlaintextClientCipher(key_id=keyset.key_id, model_id=model_id, dimension=dimension)
            )
            pipelines[name] = Pipeline(name, services, cipher, ready_s, transport, client)
        yield Deployment(keyset, keys_dir, token, model_id, dimension, pipelines)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(child) for child in fh.read().split()]
        except OSError:
            continue
    return found


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def process_tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process and of all its descendants (its worker pool), in MB (Linux /proc)."""
    descendants: list[int] = []
    pending = _children(pid)
    while pending:
        child = pending.pop()
        descendants.append(child)
        pending += _children(child)
    main = _rss_kb(pid) / 1024.0
    others = sum(_rss_kb(child) for child in descendants) / 1024.0
    return {
        "main": round(main, 1),
        "children": round(others, 1),
        "total": round(main + others, 1),
        "processes": 1 + len(descendants),
    }


def matcher_stage_means(url: str, token: str) -> dict[str, float]:
    """Mean ms per stage the matcher itself timed (its /metrics), over every request it served.

    ``compare`` is the homomorphic step as the event loop waits for it (worker IPC included); ``authority``
    the round trip to the authority (decrypt, ledger, sign, HTTP).
    """
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
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


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _system_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: user..steal minus idle and iowait)."""
    with open("/proc/stat") as fh:
        values = [int(field) for field in fh.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / _CLOCK_TICKS


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used by a process and its live descendants (utime + stime, /proc/<pid>/stat)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # stat fields 14 and 15, counted after the command name
        pending += _children(current)
    return total / _CLOCK_TICKS


class OtherLoad:
    """CPU that processes outside this benchmark used while it measured, in cores.

    Everything the benchmark runs (its own threads, the services, their workers) descends from this
    process; any other busy time on the machine is noise in the figures, so the reports carry it.
    """

    def __init__(self) -> None:
        self._busy = self._mine = self._wall = 0.0
        self.cpu_s = self.elapsed_s = 0.0

    def __enter__(self) -> OtherLoad:
        self._busy, self._mine, self._wall = _system_busy_s(), tree_cpu_s(os.getpid()), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, mine = _system_busy_s() - self._busy, tree_cpu_s(os.getpid()) - self._mine
        self.cpu_s += max(0.0, busy - mine)
        self.elapsed_s += time.perf_counter() - self._wall

    @property
    def cores(self) -> float:
        return round(self.cpu_s / self.elapsed_s, 3) if self.elapsed_s else 0.0
