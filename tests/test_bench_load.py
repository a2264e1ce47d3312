"""``veilface bench load`` for a few seconds: every key issue 6 lists, answers served, bits right."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from veilface.bench.harness.processes import OtherLoad, tree_cpu_s, tree_rss_mb
from veilface.bench.load import Sample, Segment, bit_is, summary
from veilface.cli.bench import bench_app

P50_P95_P99 = {"p50", "p95", "p99"}


@pytest.mark.e2e
def test_bench_load_tiny(tmp_path: Path) -> None:
    out, chart = tmp_path / "load.json", tmp_path / "load.png"
    tiny = ["--clients", "2", "--seconds", "2", "--workers", "1"]
    result = CliRunner().invoke(bench_app, ["load", *tiny, "--json", str(out), "--plot", str(chart)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    keys = {"clients", "seconds", "workers", "requests", "errors", "throughput_rps", "latency_ms"}
    assert keys | {"plaintext_throughput_rps", "plaintext_latency_ms"} <= set(report)
    assert (report["clients"], report["seconds"], report["workers"]) == (2, 2.0, 1)
    assert set(report["latency_ms"]) == set(report["plaintext_latency_ms"]) == P50_P95_P99
    assert report["throughput_rps"] > 0 and report["plaintext_throughput_rps"] > 0
    assert report["requests"] > 0 and report["plaintext_requests"] > 0
    assert report["errors"] == {} and report["plaintext_errors"] == {}
    assert report["wrong_decisions"] == report["plaintext_wrong_decisions"] == 0
    # The encrypted matcher holds its worker process (and the pool's helpers) beside the main process.
    assert report["matcher_rss_mb"]["start"]["processes"] >= 2
    assert report["matcher_rss_mb"]["end"]["total"] > 0
    assert report["worker_start_s"]["p50"] > 0
    assert report["matcher_stage_mean_ms"]["encrypted"]["compare"] > 0
    # The encrypted matcher spends CPU on homomorphic work the stand-in does not do.
    cpu = report["cpu_ms_per_verification"]
    assert cpu["encrypted"]["matcher"] > cpu["plaintext"]["matcher"] > 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| encrypted |" in result.stdout


def test_summary_counts_errors_by_status_and_wrong_bits() -> None:
    samples = [
        Sample(10.0, 200, True),
        Sample(20.0, 200, False),
        Sample(30.0, 503, None),
        Sample(40.0, 0, None),
        Sample(50.0, 503, None),
    ]
    result = summary([Segment(samples, 2.0, 0.5)])
    assert result["requests"] == 5
    assert result["errors"] == {"503": 2, "transport": 1}
    assert result["wrong_decisions"] == 1
    assert result["throughput_rps"] == 1.0  # two answered in two seconds
    assert result["latency_ms"]["p50"] == 15.0  # answered requests only
    assert result["generator_cpu_share"] == 0.25


def test_process_tree_rss_counts_this_process() -> None:
    rss = tree_rss_mb(os.getpid())
    assert rss["main"] > 10 and rss["processes"] >= 1
    assert rss["total"] >= rss["main"]


def test_an_unreadable_answer_counts_as_a_wrong_bit() -> None:
    assert bit_is(httpx.Response(200, json={"match": True}), True)
    assert not bit_is(httpx.Response(200, json={"match": False}), True)
    assert not bit_is(httpx.Response(200, content=b"not json"), False)
    assert not bit_is(httpx.Response(200, json=["match"]), True)


def test_this_process_own_cpu_is_counted_as_the_benchmark_s() -> None:
    # OtherLoad subtracts the CPU of this process tree from the machine's busy time; that CPU must be seen.
    before = tree_cpu_s(os.getpid())
    until = time.process_time() + 0.5
    while time.process_time() < until:
        pass
    assert tree_cpu_s(os.getpid()) - before >= 0.45
    with OtherLoad() as other:
        time.sleep(0.2)
    assert other.elapsed_s >= 0.2 and other.cores >= 0.0
