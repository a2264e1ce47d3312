"""Calibration: error-rate helpers against hand-computed values, pairs files, and a real dlib run."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from face_fixtures import encode, jpeg, mirrored, photo, rescaled
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from veilface.client.calibration import (
    CalibrationError,
    Pair,
    calibrate,
    eer,
    error_rates,
    fnmr_at_fmr,
    read_pairs,
    threshold_at_fmr,
)
from veilface.client.faces import Face, ImageSource, load_embedder
from veilface.client.samples import demo_cases
from veilface.crypto import InvalidEmbeddingError

GENUINE = [0.9, 0.8, 0.7, 0.6]
IMPOSTOR = [0.1, 0.2, 0.3, 0.65, 0.75]


def test_error_rates_count_strictly_greater_scores_as_matches() -> None:
    assert error_rates(GENUINE, IMPOSTOR, 0.65) == (pytest.approx(1 / 5), pytest.approx(1 / 4))
    assert error_rates(GENUINE, IMPOSTOR, 0.7) == (pytest.approx(1 / 5), pytest.approx(2 / 4))
    assert error_rates(GENUINE, IMPOSTOR, -1.0) == (1.0, 0.0)
    assert error_rates(GENUINE, IMPOSTOR, 1.0) == (0.0, 1.0)


def test_threshold_at_fmr_picks_the_observed_impostor_score() -> None:
    assert threshold_at_fmr(IMPOSTOR, 0.0) == 0.75
    assert threshold_at_fmr(IMPOSTOR, 0.2) == 0.65
    assert threshold_at_fmr(IMPOSTOR, 0.39) == 0.65
    assert threshold_at_fmr(IMPOSTOR, 0.4) == 0.3
    assert fnmr_at_fmr(GENUINE, IMPOSTOR, 0.0) == pytest.approx(2 / 4)
    assert fnmr_at_fmr(GENUINE, IMPOSTOR, 0.2) == pytest.approx(1 / 4)
    with pytest.raises(CalibrationError, match=r"\[0, 1\)"):
        threshold_at_fmr(IMPOSTOR, 1.0)


def test_eer_by_hand() -> None:
    assert eer([0.9, 0.8], [0.1, 0.2]) == 0.0
    assert eer([0.1, 0.2], [0.8, 0.9]) == 1.0
    # (FMR, FNMR) is (0.4, 0.25) at threshold 0.6 and (0.2, 0.25) at 0.65: they cross 3/4 of the way, at 0.25.
    assert eer(GENUINE, IMPOSTOR) == pytest.approx(0.25)
    # Symmetric overlap: one impostor above one genuine out of two each: FMR = FNMR = 0.5 at the crossing.
    assert eer([0.4, 0.9], [0.1, 0.6]) == pytest.approx(0.5)


scores = st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=40)


@given(scores, scores, st.floats(0, 0.99))
def test_the_threshold_keeps_fmr_at_or_below_target_and_is_the_lowest_that_does(
    genuine: list[float], impostor: list[float], target: float
) -> None:
    threshold = threshold_at_fmr(impostor, target)
    fmr, _ = error_rates(genuine, impostor, threshold)
    assert fmr <= target
    lower = [score for score in impostor if score < threshold]
    if lower:
        assert error_rates(genuine, impostor, max(lower))[0] > target


@given(scores, scores)
def test_eer_lies_between_the_two_rates_where_they_cross(genuine: list[float], impostor: list[float]) -> None:
    value = eer(genuine, impostor)
    assert 0.0 <= value <= 1.0
    best = min(max(error_rates(genuine, impostor, t)) for t in [-2.0, *genuine, *impostor])
    assert value <= best + 1e-12


def test_read_pairs_csv_relative_to_its_folder_or_a_root(tmp_path: Path) -> None:
    pairs_csv = tmp_path / "pairs.csv"
    pairs_csv.write_text("image_a,image_b,same\na.jpg,b.jpg,1\nsub/c.png, d.png ,0\n")
    assert read_pairs(pairs_csv) == [
        Pair(tmp_path / "a.jpg", tmp_path / "b.jpg", True),
        Pair(tmp_path / "sub/c.png", tmp_path / "d.png", False),
    ]
    assert read_pairs(pairs_csv, tmp_path / "images")[0] == Pair(
        tmp_path / "images/a.jpg", tmp_path / "images/b.jpg", True
    )


def test_read_pairs_lfw(tmp_path: Path) -> None:
    pairs_txt = tmp_path / "pairs.txt"
    pairs_txt.write_text("1\t2\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\t12\n")
    lfw = tmp_path / "lfw"
    assert read_pairs(pairs_txt, lfw) == [
        Pair(
            tmp_path / "lfw/Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
            tmp_path / "lfw/Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
            True,
        ),
        Pair(
            tmp_path / "lfw/AJ_Cook/AJ_Cook_0001.jpg", tmp_path / "lfw/Marsha_Thomason/Marsha_Thomason_0012.jpg", False
        ),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c\n1,2,3\n", "image_a,image_b,same"),
        ("image_a,image_b,same\na.jpg,b.jpg,maybe\n", "'same' must be 1 or 0"),
        ("image_a,image_b,same\n", "holds no pairs"),
        ("10\t300\nAaron\tone\t2\n", "line 2"),
        ("10\t300\nAaron\t1\n", "expected 'name n1 n2'"),
    ],
)
def test_malformed_pairs_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text(text)
    with pytest.raises(CalibrationError, match=message):
        read_pairs(pairs_file)


class CountingEmbedder:
    """Wraps the dlib embedder and counts how often each image is embedded."""

    def __init__(self) -> None:
        self._inner = load_embedder("dlib")
        self.model_id = self._inner.model_id
        self.dimension = self._inner.dimension
        self.backend = self._inner.backend
        self.default_threshold = self._inner.default_threshold
        self.calls: Counter[str] = Counter()

    def faces(self, image: ImageSource) -> list[Face]:
        self.calls[str(image)] += 1
        return self._inner.faces(image)


def test_calibrate_on_shipped_photo_variants(tmp_path: Path) -> None:
    tom = photo("tom_hanks")
    cases = demo_cases()
    files = {
        "tom.png": encode(tom),
        "tom_mirrored.jpg": jpeg(mirrored(tom), 80),
        "tom_large.png": encode(rescaled(tom, 2)),
        "t1_face.png": cases[2].probe_image,
        "t1_face_again.jpg": cases[1].probe_image,
        "t1_other.png": cases[3].enrol_image,
        "blank.png": encode(Image.new("RGB", (200, 200), (128, 128, 128))),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    rows = [
        ("tom.png", "tom_mirrored.jpg", 1),
        ("tom.png", "tom_large.png", 1),
        ("tom_mirrored.jpg", "tom_large.png", 1),
        ("t1_face.png", "t1_face_again.jpg", 1),
        ("tom.png", "t1_face.png", 0),
        ("tom_large.png", "t1_other.png", 0),
        ("t1_face.png", "t1_other.png", 0),
        ("tom_mirrored.jpg", "t1_face_again.jpg", 0),
        ("blank.png", "tom.png", 1),
        ("blank.png", "t1_other.png", 0),
    ]
    with (tmp_path / "pairs.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image_a", "image_b", "same"])
        writer.writerows(rows)
    embedder = CountingEmbedder()
    result = calibrate(embedder, read_pairs(tmp_path / "pairs.csv"), target_fmr=0.0)
    assert set(embedder.calls.values()) == {1} and len(embedder.calls) == len(files)
    assert (result.genuine_pairs, result.impostor_pairs, result.skipped_pairs) == (4, 4, 2)
    assert result.images == len(files)
    assert [(failure.image.name, "no face found" in failure.reason) for failure in result.failures] == [
        ("blank.png", True)
    ]
    assert result.eer == 0.0
    assert result.fmr == 0.0 and result.fnmr == 0.0
    assert 0.75 < result.threshold < embedder.default_threshold
    assert (result.default_fmr, result.default_fnmr) == (0.0, 0.0)
    assert result.to_dict()["failures_to_acquire"][0]["image"].endswith("blank.png")


class DegenerateModel(CountingEmbedder):
    """The dlib embedder, except that the model's output for one image is degenerate (all zeros)."""

    def faces(self, image: ImageSource) -> list[Face]:
        if str(image).endswith("degenerate.png"):
            raise InvalidEmbeddingError("the face model returned a zero or non-finite embedding")
        return super().faces(image)


def test_a_degenerate_embedding_is_a_failure_to_acquire(tmp_path: Path) -> None:
    tom, other = photo("tom_hanks"), demo_cases()[3].enrol_image
    (tmp_path / "tom.png").write_bytes(encode(tom))
    (tmp_path / "tom_mirrored.jpg").write_bytes(jpeg(mirrored(tom), 80))
    (tmp_path / "other.png").write_bytes(other)
    (tmp_path / "degenerate.png").write_bytes(encode(tom))
    pairs = [
        Pair(tmp_path / "tom.png", tmp_path / "tom_mirrored.jpg", True),
        Pair(tmp_path / "tom.png", tmp_path / "other.png", False),
        Pair(tmp_path / "degenerate.png", tmp_path / "tom.png", True),
    ]
    result = calibrate(DegenerateModel(), pairs, target_fmr=0.0)
    assert [failure.image.name for failure in result.failures] == ["degenerate.png"]
    assert (result.genuine_pairs, result.impostor_pairs, result.skipped_pairs) == (1, 1, 1)


def test_calibrate_refuses_when_no_impostor_pair_survives(tmp_path: Path) -> None:
    (tmp_path / "tom.png").write_bytes(encode(photo("tom_hanks")))
    (tmp_path / "blank.png").write_bytes(encode(Image.new("RGB", (100, 100))))
    pairs = [
        Pair(tmp_path / "tom.png", tmp_path / "tom.png", True),
        Pair(tmp_path / "tom.png", tmp_path / "blank.png", False),
    ]
    with pytest.raises(CalibrationError, match="1 genuine and 0 impostor pairs"):
        calibrate(load_embedder("dlib"), pairs)


def test_scores_must_be_finite() -> None:
    with pytest.raises(CalibrationError, match="finite"):
        eer([0.5, float("nan")], [0.1])
    assert np.isfinite(eer([0.5], [0.1]))
