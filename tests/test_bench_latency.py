"""``veilface bench latency`` in a tiny configuration: every key issue 6 lists, both pipelines decide alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from veilface.cli.bench import bench_app

pytestmark = pytest.mark.e2e

P50_P95 = {"p50", "p95"}


def test_bench_latency_tiny(tmp_path: Path) -> None:
    out, chart = tmp_path / "latency.json", tmp_path / "latency.png"
    result = CliRunner().invoke(bench_app, ["latency", "--runs", "2", "--json", str(out), "--plot", str(chart)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {"preset", "model_id", "runs", "stages_ms", "plaintext_total_ms", "encrypted_total_ms"} <= set(report)
    assert {"tenseal_dot_ms", "bytes"} <= set(report)
    assert report["runs"] == 2
    assert report["model_id"] == "dlib-resnet-v1-128"
    stages = report["stages_ms"]
    assert {"decode_detect", "embed", "encrypt", "serialise", "round_trip", "match", "decide", "total"} <= set(stages)
    assert {"refill", "match_unstocked"} <= set(stages) and "refill" not in report["plaintext_stages_ms"]
    for stage in stages.values():
        assert set(stage) == P50_P95 and stage["p50"] > 0
    assert set(report["plaintext_total_ms"]) == set(report["encrypted_total_ms"]) == P50_P95
    assert report["tenseal_dot_ms"]["p50"] > 0
    assert {"probe", "template", "evaluation_bundle", "public_bundle"} <= set(report["bytes"])
    # Same photo enrolled and verified: every round matches, through both pipelines.
    assert report["matches"] == {"encrypted": 2, "plaintext": 2}
    # The stand-in carries 128 float64 values; CKKS carries one N=4096 ciphertext (docs/design.md §3.2).
    assert report["plaintext_bytes"]["probe"] < 2_000 < 60_000 < report["bytes"]["probe"] < 70_000
    assert report["bytes"]["response"] > 0
    # Stages of one end-to-end run add up to (at most) its wall-clock total.
    parts = sum(stages[name]["p50"] for name in ("decode_detect", "landmarks", "embed", "encrypt", "round_trip"))
    assert parts <= stages["total"]["p95"] * 1.05
    assert {row["target"] for row in report["issue_7_targets"]} >= {"probe <= 70 KB", "evaluation bundle <= 256 KB"}
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| round_trip |" in result.stdout


def test_a_photo_without_a_face_is_one_error_line_and_exit_3(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    result = CliRunner().invoke(bench_app, ["latency", "--runs", "1", "--image", str(blank)])
    assert result.exit_code == 3, result.output
    (line,) = [text for text in result.stderr.splitlines() if text]  # the progress bar may leave a blank line
    assert line.startswith("Error: no face")
    assert result.stdout == ""


def test_an_unknown_preset_or_backend_is_a_usage_error() -> None:
    for option, value in (("--preset", "ckks-n1-insecure"), ("--backend", "opencv")):
        result = CliRunner().invoke(bench_app, ["latency", option, value])
        assert result.exit_code == 2, result.output
