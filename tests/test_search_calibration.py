"""The 1:N search threshold: closed forms on synthetic scores, edge cases, and real faces from shipped photos."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from statistics import NormalDist

import pytest
from face_fixtures import encode, jpeg, mirrored, photo, rescaled
from PIL import Image

from veilface.client.calibration import (
    CalibrationError,
    calibrate_search,
    fit_exponential_tail,
    fit_normal,
    fmr_for_fpir,
    fpir_at,
    max_gallery,
    read_pairs,
    search_calibration,
    search_threshold,
)
from veilface.client.faces import load_embedder
from veilface.protocol.face_models import DLIB_RESNET


def normal_scores(mean: float, sd: float, count: int) -> list[float]:
    """``count`` scores at the mid-quantiles of N(mean, sd): a sample without sampling noise."""
    unit = NormalDist()
    return [mean + sd * unit.inv_cdf((index + 0.5) / count) for index in range(count)]


IMPOSTOR = normal_scores(0.30, 0.05, 400)
GENUINE = normal_scores(0.70, 0.05, 400)


def upper_tail(mean: float, sd: float, threshold: float) -> float:
    return 0.5 * math.erfc((threshold - mean) / (sd * math.sqrt(2.0)))


def test_fpir_and_the_fmr_per_comparison_are_inverse() -> None:
    assert fmr_for_fpir(0.01, 1) == pytest.approx(0.01, rel=1e-12)
    assert fmr_for_fpir(0.01, 1_000_000) == pytest.approx(1.0050e-8, rel=1e-4)
    for gallery in (1, 7, 1_000, 10**6, 10**9):
        assert fpir_at(fmr_for_fpir(0.01, gallery), gallery) == pytest.approx(0.01, rel=1e-9)
    assert fpir_at(1.0, 5) == 1.0
    assert fpir_at(0.0, 5) == 0.0


@pytest.mark.parametrize("gallery", [1, 100, 10_000, 1_000_000])
def test_the_normal_fit_threshold_solves_the_closed_form(gallery: int) -> None:
    fit = fit_normal(IMPOSTOR)
    assert fit.mean == pytest.approx(0.30, abs=1e-12)
    assert fit.sd == pytest.approx(0.05, rel=0.01)
    point = search_threshold(IMPOSTOR, GENUINE, gallery, 0.01)
    # 1 - (1 - FMR(τ))^G = p with FMR the fitted normal's upper tail: τ = quantile (1 - p)^(1/G).
    expected = NormalDist(fit.mean, fit.sd).inv_cdf((1 - 0.01) ** (1 / gallery))
    normal = point.thresholds["normal"]
    assert normal == pytest.approx(expected, abs=1e-6)
    assert 1 - (1 - upper_tail(fit.mean, fit.sd, normal)) ** gallery == pytest.approx(0.01, rel=1e-5)
    # The cautious fit governs; the figures reported are those of the governing threshold.
    assert point.threshold == max(point.thresholds.values())
    assert point.method == max(point.thresholds, key=lambda name: point.thresholds[name])
    assert point.fmr == pytest.approx(fmr_for_fpir(0.01, gallery), rel=1e-9)
    assert point.fpir == pytest.approx(0.01, rel=1e-9)
    genuine_fit = fit_normal(GENUINE, "genuine")
    assert point.fnir == pytest.approx(NormalDist(genuine_fit.mean, genuine_fit.sd).cdf(point.threshold), abs=1e-9)
    assert point.fnir_observed == sum(score <= point.threshold for score in GENUINE) / len(GENUINE)
    assert point.extrapolated is (fmr_for_fpir(0.01, gallery) < 1 / len(IMPOSTOR))
    assert point.attainable


def test_the_exponential_tail_by_hand() -> None:
    scores = [index / 1000 for index in range(100)]  # 0.000 .. 0.099
    tail = fit_exponential_tail(scores)
    # The highest 20 (0.080 .. 0.099) above the 21st highest, 0.079: excesses 0.001 .. 0.020, mean 0.0105.
    assert (tail.scores, tail.share) == (20, 0.2)
    assert tail.start == pytest.approx(0.079)
    assert tail.scale == pytest.approx(0.0105)
    assert tail.fmr(0.079 + 0.0105) == pytest.approx(0.2 / math.e)
    genuine = normal_scores(0.6, 0.1, 50)
    point = search_threshold(scores, genuine, 10_000, 0.01)
    expected = 0.079 + 0.0105 * math.log(0.2 / fmr_for_fpir(0.01, 10_000))
    assert point.thresholds["exponential-tail"] == pytest.approx(expected, rel=1e-12)


def test_gallery_one_is_the_one_to_one_fmr() -> None:
    fit = fit_normal(IMPOSTOR)
    point = search_threshold(IMPOSTOR, GENUINE, 1, 0.05)
    assert point.thresholds["normal"] == pytest.approx(fit.mean + fit.sd * NormalDist().inv_cdf(0.95), abs=1e-12)
    assert point.fmr == pytest.approx(0.05, rel=1e-9) and point.fpir == pytest.approx(0.05, rel=1e-9)
    assert not point.extrapolated


def test_thresholds_and_fnir_rise_with_the_gallery() -> None:
    result = search_calibration(
        GENUINE, IMPOSTOR, [1, 10, 1_000, 100_000, 10**7], 0.01, model_id="m", default_threshold=0.5
    )
    thresholds = [point.threshold for point in result.points]
    fnirs = [point.fnir for point in result.points]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    assert fnirs == sorted(fnirs)


def test_an_unattainable_target_is_refused_clearly_and_reported_in_the_table() -> None:
    near_one = normal_scores(0.90, 0.03, 100)
    genuine = normal_scores(0.97, 0.01, 20)
    with pytest.raises(CalibrationError, match="unattainable"):
        search_threshold(near_one, genuine, 1_000_000, 0.01)
    result = search_calibration(genuine, near_one, [1, 1_000_000], 0.01, model_id="m", default_threshold=0.9)
    small, large = result.points
    assert small.attainable and small.threshold < 1.0
    assert not large.attainable and large.threshold >= 1.0
    assert large.fnir == 1.0


@pytest.mark.parametrize(("gallery", "target", "message"), [(0, 0.01, "at least one"), (10, 0.0, "target FPIR")])
def test_bad_gallery_or_target_is_refused(gallery: int, target: float, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        search_threshold(IMPOSTOR, GENUINE, gallery, target)
    with pytest.raises(CalibrationError, match="target FPIR"):
        search_threshold(IMPOSTOR, GENUINE, 10, 1.0)


def test_too_few_or_constant_scores_are_refused() -> None:
    with pytest.raises(CalibrationError, match="at least 20 impostor scores"):
        search_threshold(IMPOSTOR[:19], GENUINE, 10, 0.01)
    with pytest.raises(CalibrationError, match="at least 5 genuine scores"):
        search_threshold(IMPOSTOR, GENUINE[:4], 10, 0.01)
    with pytest.raises(CalibrationError, match="do not vary"):
        search_threshold([0.4] * 30, GENUINE, 10, 0.01)
    with pytest.raises(CalibrationError, match="finite"):
        search_threshold([*IMPOSTOR, math.nan], GENUINE, 10, 0.01)


def test_the_largest_usable_gallery_is_the_last_that_meets_both_bounds() -> None:
    target, bound = 0.01, 0.05
    limit = max_gallery(IMPOSTOR, GENUINE, target, bound)
    genuine_fit = fit_normal(GENUINE, "genuine")
    assert limit.threshold <= NormalDist(genuine_fit.mean, genuine_fit.sd).inv_cdf(bound) + 1e-12
    assert sum(score <= limit.threshold for score in GENUINE) <= bound * len(GENUINE)
    # The normal fit's own limit from the closed form G = floor(log(1 - p) / log(1 - FMR(τ*))).
    fit = fit_normal(IMPOSTOR)
    normal_fmr = upper_tail(fit.mean, fit.sd, limit.threshold)
    assert limit.galleries["normal"] == math.floor(math.log1p(-target) / math.log1p(-normal_fmr))
    assert limit.gallery == min(limit.galleries.values()) and limit.gallery is not None
    assert limit.gallery > 1
    assert fpir_at(limit.fmr, limit.gallery) <= target < fpir_at(limit.fmr, limit.gallery + 1)
    # The search threshold at that gallery keeps FNIR within the bound; one template more breaks it.
    inside = search_threshold(IMPOSTOR, GENUINE, limit.gallery, target)
    outside = search_threshold(IMPOSTOR, GENUINE, limit.gallery + 1, target)
    assert inside.threshold <= limit.threshold < outside.threshold
    assert inside.fnir <= bound + 1e-12 and inside.fnir_observed <= bound


def test_overlapping_scores_allow_no_gallery() -> None:
    limit = max_gallery(IMPOSTOR, normal_scores(0.32, 0.05, 100), 0.01, 0.05)
    assert limit.gallery == 0
    with pytest.raises(CalibrationError, match="FNIR bound"):
        max_gallery(IMPOSTOR, GENUINE, 0.01, 0.0)


def test_reports_say_the_figures_are_extrapolated() -> None:
    result = search_calibration(GENUINE, IMPOSTOR, [1_000, 1_000_000], 0.01, model_id="model", default_threshold=0.45)
    document = json.loads(result.to_json())
    assert document["extrapolated"] is True
    assert [row["gallery"] for row in document["galleries"]] == [1_000, 1_000_000]
    assert all(row["extrapolated"] for row in document["galleries"])
    assert document["impostor_fits"][0] == {
        "method": "normal",
        "mean": pytest.approx(0.3),
        "sd": result.impostor_fit.sd,
    }
    assert document["impostor_fits"][1]["method"] == "exponential-tail"
    assert document["one_to_one"]["fmr"]["normal"] == pytest.approx(upper_tail(0.3, result.impostor_fit.sd, 0.45))
    assert document["max_gallery"]["gallery"] == result.limit.gallery
    assert any("independent" in line for line in document["assumptions"])
    markdown = result.to_markdown()
    assert "| 1,000,000 |" in markdown and "extrapolated" in markdown


def _face_crop(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    left, top, right, bottom = box
    pad = round((right - left) * 0.4)
    crop = image.crop((max(left - pad, 0), max(top - pad, 0), right + pad, bottom + pad))
    return crop.resize((crop.width * 2, crop.height * 2), Image.Resampling.BICUBIC)


def test_real_faces_need_a_search_threshold_above_the_one_to_one_threshold(tmp_path: Path) -> None:
    embedder = load_embedder("dlib")
    group = photo("t1")
    tom = photo("tom_hanks")
    people = {"tom": rescaled(tom, 2)}
    for index, face in enumerate(embedder.faces(encode(group))):
        people[f"t1_{index}"] = _face_crop(group, face.box)
    assert len(people) == 7
    files: dict[str, list[str]] = {}
    for name, image in people.items():
        variants = {
            f"{name}.png": encode(image),
            f"{name}_mirrored.jpg": jpeg(mirrored(image), 80),
            f"{name}_small.png": encode(rescaled(image, 0.75)),
        }
        for file, data in variants.items():
            (tmp_path / file).write_bytes(data)
        files[name] = list(variants)
    images = [(name, file) for name, names in files.items() for file in names]
    with (tmp_path / "pairs.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image_a", "image_b", "same"])
        for index, (name_a, file_a) in enumerate(images):
            for name_b, file_b in images[index + 1 :]:
                writer.writerow([file_a, file_b, int(name_a == name_b)])
    result = calibrate_search(embedder, read_pairs(tmp_path / "pairs.csv"), [1, 1_000_000], 0.01, take_largest=True)
    assert result.failures == []
    assert (result.genuine_pairs, result.impostor_pairs) == (21, 189)
    assert result.model_id == DLIB_RESNET.model_id and result.default_threshold == DLIB_RESNET.default_threshold
    one, million = result.points
    # The 1:1 threshold lets through far more than the 1e-8 per comparison a million-template search needs.
    assert min(result.default_fmr.values()) > 100 * fmr_for_fpir(0.01, 1_000_000)
    assert million.threshold > DLIB_RESNET.default_threshold
    assert min(million.thresholds.values()) > DLIB_RESNET.default_threshold
    assert million.threshold > one.threshold
    assert million.extrapolated and million.fmr < 1 / result.impostor_pairs
    # The same pairs through the command line: JSON alone on standard output, the same thresholds.
    from typer.testing import CliRunner

    from veilface.cli.app import app

    command = ["calibrate", str(tmp_path / "pairs.csv"), "--search", "--gallery", "1000000", "--take-largest"]
    answer = CliRunner().invoke(app, [*command, "--json"])
    assert answer.exit_code == 0, answer.output
    printed = json.loads(answer.stdout)
    assert printed["galleries"][0]["gallery"] == 1_000_000
    assert printed["galleries"][0]["threshold"] == pytest.approx(million.threshold)
