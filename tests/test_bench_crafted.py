"""``veilface bench crafted`` against real services on a tiny pairs CSV made from the shipped photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bench_accuracy import _tiny_pairs
from typer.testing import CliRunner

from veilface.cli.bench import bench_app

ATTACKS = {"scaled-wrap", "padding-wrap", "imaginary-wrap", "wolf-template", "replay"}
LIMITS = {"rerandomised-replay", "mean-face-wolf"}


@pytest.mark.e2e
def test_bench_crafted_tiny(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    pairs = _tiny_pairs(images)  # the demo cases (two genuine, two impostor) and a faceless image
    out = tmp_path / "crafted.json"
    arguments = ["crafted", "--pairs", str(pairs), "--root", str(images), "--json", str(out)]
    result = CliRunner().invoke(bench_app, [*arguments, "--tries", "10", "--honest-tries", "40", "--clients", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    attacks = {row["name"]: row for row in report["attacks"]}
    limits = {row["name"]: row for row in report["limits"]}
    assert set(attacks) >= ATTACKS and set(limits) >= LIMITS
    for row in [*attacks.values(), *limits.values()]:
        assert set(row) == {"name", "tries", "matches", "refused"} and row["tries"] == 10
        assert row["matches"] + row["refused"] <= row["tries"]
    # A byte-identical probe is refused on its second use; the crafted wraps are refused or miss.
    assert attacks["replay"] == {"name": "replay", "tries": 10, "matches": 0, "refused": 10}
    for name in ATTACKS - {"replay"}:
        assert attacks[name]["matches"] <= 1, name
    # The stated limit: a re-randomised capture is the same face in new bytes, and matches.
    assert limits["rerandomised-replay"]["matches"] == 10
    assert report["honest"] == {"tries": 40, "refused": 0, "decisions_changed": 0}
    assert report["threshold"] == pytest.approx(0.91) and report["failed_to_acquire"] == 1
    assert (report["faces"], report["usable_pairs"]) == (8, 4) and report["people"] >= 2
    assert "| replay | 10 | 0 (0.0%) | 10 (100.0%) |" in result.stdout
