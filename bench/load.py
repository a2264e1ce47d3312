"""Concurrent verifications against real matcher worker processes: throughput, latency, errors, memory.

``veilface bench load`` (``veilface.cli.bench``) runs ``run_load`` and prints ``markdown`` of its report.

Both deployments run at once on loopback under the same fresh keys: the encrypted one (matcher with W
worker processes, authority) and the plaintext stand-in (same services code, ciphers replaced). Each
request sends a fresh encryption of a genuine-like or impostor embedding of a few enrolled subjects, so
every answer's bit can be checked: the matcher answers a probe's bytes once (docs/design.md §2.6), as a
device encrypts every capture afresh. A client encrypts on its own device, not on the matcher's cores, so
the probes of a segment are encrypted before its clock starts (about twice what the warm-up's rate says the
segment will send), each sent once; a client thread that runs out encrypts the rest in the window
(``probes_encrypted_in_window``, then in ``generator_cpu_share``).
C threads, each with its own keep-alive HTTP connection, send verifications back to back for S seconds
per deployment, in four segments of S/2 ordered encrypted, plaintext, plaintext, encrypted so that drift
on the machine hits both alike, after a warm-up that is not counted. Latency is per request as the
client sees it; throughput counts answered verifications (200) per second.

Also measured: the matcher's resident memory (its process and its workers) before the first request
and after the last, the services' start-up, and how long one matcher worker process takes to be ready
(spawned, imports done, keys loaded) the way the matcher starts its workers.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import veilface.crypto as vc
from veilface.bench._stats import Progress, Report, machine, markdown_table, percentiles, quiet, targets_table
from veilface.bench.harness.deployment import (
    DIMENSION,
    MODEL_ID,
    THRESHOLD,
    Pipelines,
    bearer,
    matcher_stage_means,
    pipelines,
)
from veilface.bench.harness.faults import GENUINE_NOISE, unit
from veilface.bench.harness.processes import OtherLoad, tree_cpu_s, tree_rss_mb
from veilface.protocol import headers as wire
from veilface.server.launch import RunningServices

SUBJECTS = 8
WARMUP_S = 1.0
WORKER_START_RUNS = 3
ISSUE_7 = {"throughput_ratio": 0.7, "p99_ms": 30.0, "worker_start_s": 1.0}
SEGMENTS = ("encrypted", "plaintext", "plaintext", "encrypted")
PER_DEPLOYMENT = ("elapsed_s", "generator_cpu_share", "segments_rps", "probes_encrypted_in_window")


@dataclass(frozen=True)
class Request:
    subject: str
    embedding: np.ndarray
    expect_match: bool
    cipher: vc.ClientCipher
    lock: threading.Lock  # one cipher, shared by the client threads

    def probe(self) -> bytes:
        """A fresh encryption of the embedding: the matcher refuses probe bytes it has answered before."""
        with self.lock:
            return self.cipher.encrypt(self.embedding)


@dataclass(frozen=True)
class Sample:
    ms: float
    status: int  # 0: no HTTP answer (connection error, timeout)
    correct: bool | None  # None unless answered 200


def workload(cipher: vc.ClientCipher, rng: np.random.Generator) -> tuple[dict[str, bytes], list[Request]]:
    """Templates per subject, and per subject two genuine-like and two impostor embeddings, encrypted afresh
    for every request (:meth:`Request.probe`)."""
    templates: dict[str, bytes] = {}
    requests: list[Request] = []
    lock = threading.Lock()
    for number in range(SUBJECTS):
        subject = f"load-{number}"
        template = unit(rng.normal(size=DIMENSION))
        templates[subject] = cipher.encrypt(template)
        for _ in range(2):
            genuine = unit(template + GENUINE_NOISE * rng.normal(size=DIMENSION))
            requests.append(Request(subject, genuine, True, cipher, lock))
            requests.append(Request(subject, unit(rng.normal(size=DIMENSION)), False, cipher, lock))
    return templates, requests


def bit_is(response: httpx.Response, expected: bool) -> bool:
    """Whether an answered verification carries the expected bit (an unreadable answer counts as wrong)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("match") is expected


@dataclass
class Segment:
    """What one stretch of load against one deployment gave."""

    samples: list[Sample]
    elapsed_s: float
    generator_cpu_s: float  # CPU time of this process (the load generator) meanwhile, all threads
    encrypted_in_window: int = 0  # probes the pool did not hold, encrypted while the clock ran


Pool = list[tuple[Request, bytes]]


def encrypt_pools(requests: list[Request], *, clients: int, pooled: int) -> list[Pool]:
    """``pooled`` fresh probes per client thread, in the order :func:`drive` sends them."""
    return [
        [(request, request.probe()) for request in (requests[(i + k * clients) % len(requests)] for k in range(pooled))]
        for i in range(clients)
    ]


def drive(
    url: str, token: str, requests: list[Request], *, clients: int, seconds: float, pools: list[Pool] | None = None
) -> Segment:
    """``clients`` threads sending verifications back to back until ``seconds`` pass: first the probes of
    ``pools`` (encrypted beforehand, each sent once), then probes encrypted in the window."""
    samples: list[Sample] = []
    lock = threading.Lock()
    pools = [list(pool) for pool in pools] if pools else [[] for _ in range(clients)]
    pooled = len(pools[0])
    in_window = [0] * clients
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds

    def client(index: int) -> None:
        mine: list[Sample] = []
        pool = pools[index]
        pool.reverse()
        with httpx.Client(base_url=url, headers=bearer(token), timeout=30.0) as http:
            turn = index + pooled * clients
            while time.perf_counter() < deadline:
                if pool:
                    request, probe = pool.pop()
                else:
                    request = requests[turn % len(requests)]
                    turn += clients
                    probe = request.probe()
                    in_window[index] += 1
                sent = time.perf_counter()
                try:
                    response = http.post(
                        f"/v1/subjects/{request.subject}/verify",
                        content=probe,
                        headers={"Content-Type": "application/octet-stream", wire.CLIENT_NONCE: secrets.token_hex(16)},
                    )
                except httpx.HTTPError:
                    mine.append(Sample((time.perf_counter() - sent) * 1000.0, 0, None))
                    continue
                ms = (time.perf_counter() - sent) * 1000.0
                correct = bit_is(response, request.expect_match) if response.status_code == 200 else None
                mine.append(Sample(ms, response.status_code, correct))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(index,), name=f"load-client-{index}") for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Segment(samples, time.perf_counter() - started, time.process_time() - cpu_started, sum(in_window))


@dataclass
class Measured:
    """One deployment's segments, and the CPU its services and everything else used meanwhile."""

    segments: list[Segment] = field(default_factory=list)
    other_load: OtherLoad = field(default_factory=OtherLoad)
    service_cpu_s: dict[str, float] = field(default_factory=lambda: {"matcher": 0.0, "authority": 0.0})

    @contextmanager
    def watching(self, services: RunningServices) -> Iterator[None]:
        pids = {"matcher": services.matcher.pid, "authority": services.authority.pid}
        before = {part: tree_cpu_s(pid) for part, pid in pids.items()}
        with self.other_load:
            yield
        for part, pid in pids.items():
            self.service_cpu_s[part] += tree_cpu_s(pid) - before[part]

    def cpu_per_verification(self) -> dict[str, float]:
        """CPU milliseconds per answered verification: matcher (with its workers), authority, load generator."""
        answered = sum(sample.status == 200 for segment in self.segments for sample in segment.samples)
        spent = {**self.service_cpu_s, "load_generator": sum(segment.generator_cpu_s for segment in self.segments)}
        return {part: round(1000.0 * seconds / answered, 3) if answered else 0.0 for part, seconds in spent.items()}


def quantiles(samples: dict[str, list[Sample]]) -> dict[str, list[float]]:
    """Answered requests' latency at every percent (and 99.9), enough to draw the distribution."""
    levels = [*range(101), 99.9]
    result: dict[str, list[float]] = {"percent": sorted(float(level) for level in levels)}
    for name, values in samples.items():
        answered = [sample.ms for sample in values if sample.status == 200]
        result[name] = [round(float(v), 3) for v in np.percentile(answered, result["percent"])] if answered else []
    return result


def summary(segments: list[Segment]) -> dict[str, Any]:
    samples = [sample for segment in segments for sample in segment.samples]
    elapsed = sum(segment.elapsed_s for segment in segments)
    answered = [sample.ms for sample in samples if sample.status == 200]
    errors = Counter("transport" if sample.status == 0 else str(sample.status) for sample in samples)
    del errors["200"]
    return {
        "requests": len(samples),
        "errors": dict(sorted(errors.items())),
        "wrong_decisions": sum(sample.correct is False for sample in samples),
        "throughput_rps": round(len(answered) / elapsed, 2),
        "latency_ms": percentiles(answered, 50, 95, 99) if answered else None,
        "elapsed_s": round(elapsed, 3),
        # Share of one core the load generator itself used: it runs on the same cores as the services.
        "generator_cpu_share": round(sum(segment.generator_cpu_s for segment in segments) / elapsed, 3),
        "probes_encrypted_in_window": sum(segment.encrypted_in_window for segment in segments),
        "segments_rps": [
            round(sum(sample.status == 200 for sample in segment.samples) / segment.elapsed_s, 2)
            for segment in segments
        ],
    }


def worker_start_times(keys_dir: str, runs: int) -> None:
    """In a fresh interpreter: start one matcher worker process ``runs`` times the way the matcher does.

    Run with ``python -c`` so the spawned workers import only what the matcher's own workers import (the
    pickled cipher spec and the pool initializer pull them in), never this benchmark's main module.
    Prints the seconds per start as JSON.
    """
    import asyncio

    from veilface.server.keystore import load_matcher_keys
    from veilface.server.matcher.engine import MatcherCipherSpec
    from veilface.server.workers import ProcessRunner

    keys = load_matcher_keys(Path(keys_dir))
    spec = MatcherCipherSpec(keys.evaluation, keys.description.model_id, keys.description.dimension)
    seconds = []
    for _ in range(runs):
        runner = ProcessRunner(spec, 1)
        started = time.perf_counter()
        asyncio.run(runner.start())
        seconds.append(time.perf_counter() - started)
        runner.close()
    sys.stdout.write(json.dumps(seconds) + "\n")


def measure_worker_start(matcher_keys_dir: Path, runs: int = WORKER_START_RUNS) -> dict[str, float]:
    code = f"from veilface.bench.load import worker_start_times; worker_start_times({str(matcher_keys_dir)!r}, {runs})"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    seconds = json.loads(output.stdout)
    return {"p50": round(float(np.median(seconds)), 3), "max": round(max(seconds), 3), "runs": runs}


def run_load(*, clients: int, seconds: float, workers: int, progress: Progress = quiet) -> Report:
    """Both deployments under ``clients`` concurrent clients for ``seconds`` each, ``workers`` matcher workers."""
    rng = np.random.default_rng(11)

    def step(phase: str, phase_seconds: float) -> None:
        progress(f"{phase} ({phase_seconds:g} s)")

    with tempfile.TemporaryDirectory(prefix="veilface-bench-") as root:
        with pipelines(
            Path(root),
            preset=vc.DEFAULT_PRESET,
            model_id=MODEL_ID,
            dimension=DIMENSION,
            threshold=THRESHOLD,
            workers=workers,
        ) as deployed:
            rss_start = {name: tree_rss_mb(p.services.matcher.pid) for name, p in deployed.pipelines.items()}
            work = _enrol(deployed, rng)
            pooled: dict[str, int] = {}
            for name, pipeline in deployed.pipelines.items():
                step(f"warm-up {name}", WARMUP_S)
                warm = drive(
                    pipeline.services.matcher_url, deployed.token, work[name], clients=clients, seconds=WARMUP_S
                )
                # Twice what the warm-up's rate says a segment sends, per client thread.
                pooled[name] = int(2 * len(warm.samples) / warm.elapsed_s * seconds / 2 / clients) + 8
            measured = {name: Measured() for name in deployed.pipelines}
            for name in SEGMENTS:
                step(name, seconds / 2)
                pipeline = deployed.pipelines[name]
                url = pipeline.services.matcher_url
                pools = encrypt_pools(work[name], clients=clients, pooled=pooled[name])
                with measured[name].watching(pipeline.services):
                    segment = drive(url, deployed.token, work[name], clients=clients, seconds=seconds / 2, pools=pools)
                measured[name].segments.append(segment)
            running = deployed.pipelines
            rss_end = {name: tree_rss_mb(p.services.matcher.pid) for name, p in running.items()}
            stage_ms = {
                name: matcher_stage_means(p.services.matcher_url, deployed.token) for name, p in running.items()
            }
            authority_rss = tree_rss_mb(running["encrypted"].services.authority.pid)
            ready_s = {name: round(pipeline.deployment.ready_s, 3) for name, pipeline in running.items()}
            step("worker start-up", 0.0)
            worker_start = measure_worker_start(running["encrypted"].deployment.matcher_keys)

    encrypted, plaintext = summary(measured["encrypted"].segments), summary(measured["plaintext"].segments)
    report: Report = {
        "benchmark": "load",
        "machine": machine(),
        "preset": vc.DEFAULT_PRESET,
        "model_id": MODEL_ID,
        "clients": clients,
        "seconds": seconds,
        "workers": workers,
        **{key: encrypted[key] for key in ("requests", "errors", "wrong_decisions", "throughput_rps", "latency_ms")},
        **{f"plaintext_{key}": value for key, value in plaintext.items() if key not in PER_DEPLOYMENT},
        "throughput_ratio": (
            round(encrypted["throughput_rps"] / plaintext["throughput_rps"], 4) if plaintext["throughput_rps"] else 0.0
        ),
        **{key: {"encrypted": encrypted[key], "plaintext": plaintext[key]} for key in PER_DEPLOYMENT},
        "matcher_rss_mb": {"start": rss_start["encrypted"], "end": rss_end["encrypted"]},
        "plaintext_matcher_rss_mb": {"start": rss_start["plaintext"], "end": rss_end["plaintext"]},
        "authority_rss_mb_end": authority_rss,
        "matcher_stage_mean_ms": stage_ms,
        "other_load_cores": {name: part.other_load.cores for name, part in measured.items()},
        "cpu_ms_per_verification": {name: part.cpu_per_verification() for name, part in measured.items()},
        "services_ready_s": ready_s,
        "worker_start_s": worker_start,
        "latency_quantiles_ms": quantiles(
            {
                name: [sample for segment in part.segments for sample in segment.samples]
                for name, part in measured.items()
            }
        ),
    }
    report["issue_7_targets"] = targets(report)
    return report


def _enrol(deployed: Pipelines, rng: np.random.Generator) -> dict[str, list[Request]]:
    work: dict[str, list[Request]] = {}
    for name, pipeline in deployed.pipelines.items():
        templates, work[name] = workload(pipeline.client_cipher, rng)
        for subject, template in templates.items():
            pipeline.client.enroll_ciphertext(subject, template)
    return work


def targets(report: Report) -> list[dict[str, Any]]:
    """Issue 7's load and start-up targets against this run's figures."""
    p99 = report["latency_ms"]["p99"] if report["latency_ms"] else float("inf")
    rows = [
        (
            "encrypted throughput >= 70% of the stand-in's",
            report["throughput_ratio"],
            report["throughput_ratio"] >= ISSUE_7["throughput_ratio"],
        ),
        ("encrypted p99 <= 30 ms", p99, p99 <= ISSUE_7["p99_ms"]),
        (
            "a matcher worker ready <= 1 s after start",
            report["worker_start_s"]["max"],
            report["worker_start_s"]["max"] <= ISSUE_7["worker_start_s"],
        ),
    ]
    return [{"target": target, "measured": measured, "met": bool(met)} for target, measured, met in rows]


def markdown(report: Report) -> str:
    def row(name: str, prefix: str, rss: dict[str, Any]) -> list[Any]:
        latency = report[f"{prefix}latency_ms"] or dict.fromkeys(("p50", "p95", "p99"), float("nan"))
        errors = report[f"{prefix}errors"]
        return [
            name,
            report[f"{prefix}requests"],
            f"{report[f'{prefix}throughput_rps']:.1f}",
            f"{latency['p50']:.1f} / {latency['p95']:.1f} / {latency['p99']:.1f}",
            ", ".join(f"{status}: {count}" for status, count in errors.items()) or "none",
            report[f"{prefix}wrong_decisions"],
            f"{rss['start']['total']:.0f} -> {rss['end']['total']:.0f}",
        ]

    rows = [
        row("encrypted", "", report["matcher_rss_mb"]),
        row("plaintext stand-in", "plaintext_", report["plaintext_matcher_rss_mb"]),
    ]
    worker = report["worker_start_s"]
    lines = [
        f"Load: {report['clients']} clients, {report['seconds']} s per deployment, {report['workers']} matcher "
        f"worker processes; matcher, authority and load generator on the same {report['machine']['cores']} cores "
        f"({report['machine']['cpu'] or 'unknown CPU'}).",
        "",
        markdown_table(
            [
                "deployment",
                "requests",
                "verifications/s",
                "latency ms p50 / p95 / p99",
                "errors",
                "wrong bits",
                "matcher RSS MB",
            ],
            rows,
        ),
        "",
        f"Throughput encrypted / plaintext = {report['throughput_ratio']:.3f}. A matcher worker is ready "
        f"{worker['p50']:.2f} s after it starts (max {worker['max']:.2f} s over {worker['runs']}); services ready "
        f"in {report['services_ready_s']['encrypted']:.2f} s (encrypted) and "
        f"{report['services_ready_s']['plaintext']:.2f} s (stand-in).",
        "Inside the matcher (mean ms over every request it served, from its /metrics): "
        + "; ".join(
            f"{name}: " + ", ".join(f"{stage} {ms:.2f}" for stage, ms in report["matcher_stage_mean_ms"][name].items())
            for name in ("encrypted", "plaintext")
        )
        + ". Load generator CPU (share of one core): "
        + ", ".join(f"{name} {share:.2f}" for name, share in report["generator_cpu_share"].items())
        + "; throughput per segment: "
        + ", ".join(f"{name} {rps}" for name, rps in report["segments_rps"].items())
        + ".",
        "CPU ms per verification: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{part} {ms:.2f}" for part, ms in report["cpu_ms_per_verification"][name].items())
            for name in ("encrypted", "plaintext")
        )
        + ".",
        "Other processes on this machine used "
        + ", ".join(f"{cores:.2f} cores in the {name} segments" for name, cores in report["other_load_cores"].items())
        + " (0 when undisturbed).",
        "",
        targets_table(report["issue_7_targets"]),
    ]
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> None:
    """Latency distribution (CDF, log axis) of both deployments, and their throughput."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cdf, bars) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [2, 1]})
    names = {"encrypted": ("encrypted", "C3"), "plaintext": ("plaintext stand-in", "C0")}
    shares = np.asarray(report["latency_quantiles_ms"]["percent"]) / 100.0
    for name, (label, colour) in names.items():
        if report["latency_quantiles_ms"][name]:
            cdf.plot(report["latency_quantiles_ms"][name], shares, color=colour, label=label)
    cdf.axvline(ISSUE_7["p99_ms"], color="grey", linestyle=":", label="issue 7: p99 30 ms")
    cdf.axhline(0.99, color="grey", linewidth=0.5)
    cdf.set_xscale("log")
    cdf.set_xlabel("latency per verification, ms (log)")
    cdf.set_ylabel("share of requests")
    cdf.set_title(f"{report['clients']} clients, {report['workers']} matcher workers", fontsize="medium")
    cdf.legend(loc="lower right")
    cdf.grid(True, which="both", alpha=0.3)
    drawn = bars.bar(
        [label for label, _ in names.values()],
        [report["throughput_rps"], report["plaintext_throughput_rps"]],
        color=[colour for _, colour in names.values()],
    )
    bars.bar_label(drawn, fmt="%.0f")
    bars.set_ylabel("verifications per second")
    bars.set_title(f"throughput (ratio {report['throughput_ratio']:.2f})", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
