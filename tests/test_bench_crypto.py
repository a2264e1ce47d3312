"""The crypto micro-benchmark runs in a tiny configuration and reports every figure."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from veilface.cli.bench import bench_app


def test_bench_crypto_tiny(tmp_path: Path) -> None:
    out = tmp_path / "crypto.json"
    result = CliRunner().invoke(
        bench_app, ["crypto", "--runs", "3", "--pairs", "5", "--preset", "ckks-n4096-q60-49-d29", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    (preset,) = report["presets"]
    steps = {"encrypt_zero", "multiply_relinearize", "conjugate", "serialise"}
    assert set(preset["ms"]) == {"encrypt", "compare", "compare_unstocked", "decide", "tenseal_dot"} | steps
    assert all(v["p50"] > 0 for v in preset["ms"].values())
    # the steps are parts of a compare: none alone takes longer than the whole
    assert all(preset["ms"][step]["p50"] < preset["ms"]["compare_unstocked"]["p50"] for step in steps)
    assert 90_000 < preset["bytes"]["blinded_result"] < 110_000  # norm, projections and score, compacted
    assert 60_000 < preset["bytes"]["probe"] < 70_000
    assert preset["bytes"]["evaluation_bundle"] < 256 * 1024
    assert preset["max_abs_score_error"] < 2e-5
    assert report["tenseal_dot"]["max_abs_score_error"] < 1e-4
    assert "| ckks-n4096-q60-49-d29 |" in result.stdout
