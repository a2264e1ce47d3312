"""``veilface bench accuracy`` on a tiny pairs CSV made from the shipped photos, and its rate helpers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from veilface.bench.accuracy import decision_rates, summarise
from veilface.cli.bench import bench_app
from veilface.client.samples import demo_cases

ISO_FIGURES = {"fmr", "fnmr", "eer", "fnmr_at_fmr_1e-2", "fnmr_at_fmr_1e-3"}
ISSUE_KEYS = {
    "pairs",
    "genuine",
    "impostor",
    "failed_to_acquire",
    "threshold",
    "plaintext",
    "encrypted",
    "decision_agreement",
    "max_abs_score_diff",
}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _tiny_pairs(folder: Path) -> Path:
    """The four demo cases as pairs (two genuine, two impostor) plus one pair with a faceless image."""
    rows = []
    for number, case in enumerate(demo_cases()):
        (folder / f"case{number}_a.img").write_bytes(case.enrol_image)
        (folder / f"case{number}_b.img").write_bytes(case.probe_image)
        rows.append((f"case{number}_a.img", f"case{number}_b.img", int(case.expected_match)))
    (folder / "blank.png").write_bytes(_png(Image.new("RGB", (200, 200), (128, 128, 128))))
    rows.append(("blank.png", "case0_a.img", 0))
    pairs = folder / "pairs.csv"
    with pairs.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image_a", "image_b", "same"])
        writer.writerows(rows)
    return pairs


@pytest.mark.e2e
def test_bench_accuracy_tiny(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    pairs = _tiny_pairs(images)
    out, chart = tmp_path / "accuracy.json", tmp_path / "det.png"
    result = CliRunner().invoke(
        bench_app, ["accuracy", str(pairs), "--root", str(images), "--json", str(out), "--plot", str(chart)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert ISSUE_KEYS <= set(report)
    for pipeline in ("plaintext", "encrypted"):
        assert ISO_FIGURES <= set(report[pipeline])
    assert (report["pairs"], report["genuine"], report["impostor"]) == (5, 2, 2)
    assert report["failed_to_acquire"] == 1 and report["skipped_pairs"] == 1
    assert report["acquisition_failures"][0]["image"] == "blank.png"
    # The demo cases decide as labelled with dlib's default threshold, encrypted or not, locally and
    # through the services.
    assert report["plaintext"]["fmr"] == report["plaintext"]["fnmr"] == 0.0
    assert report["encrypted"]["fmr"] == report["encrypted"]["fnmr"] == 0.0
    assert report["decision_agreement"] == report["service_decision_agreement"] == 1.0
    assert report["max_abs_score_diff"] < 1e-4
    assert [record["encrypted_match"] for record in report["pair_results"]] == [True, True, False, False]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| encrypted |" in result.stdout and "| plaintext |" in result.stdout


def test_decision_rates_count_impostor_matches_and_genuine_misses() -> None:
    # genuine: matched, missed; impostor: matched, matched, rejected
    fmr, fnmr = decision_rates([True, False, True, True, False], [True, True, False, False, False])
    assert fmr == pytest.approx(2 / 3)
    assert fnmr == pytest.approx(0.5)


def test_summarise_reports_disagreement_and_score_difference() -> None:
    def record(same: bool, plain: float, encrypted: float, encrypted_match: bool) -> dict[str, object]:
        return {
            "same": same,
            "plaintext_score": plain,
            "encrypted_score": encrypted,
            "plaintext_match": plain > 0.5,
            "encrypted_match": encrypted_match,
            "service_match": plain > 0.5,
        }

    records = [
        record(True, 0.9, 0.9, True),
        record(True, 0.51, 0.49, False),  # the encrypted pipeline disagrees here
        record(False, 0.2, 0.2, False),
        record(False, 0.1, 0.1, False),
    ]
    summary = summarise(records, 0.5)
    assert summary["decision_agreement"] == 0.75
    assert summary["service_decision_agreement"] == 1.0
    assert summary["max_abs_score_diff"] == pytest.approx(0.02)
    assert summary["plaintext"]["fnmr"] == 0.0
    assert summary["encrypted"]["fnmr"] == 0.5
