"""Threshold calibration from labelled image pairs, and the error-rate helpers benchmarks share.

Terms follow ISO/IEC 19795-1. A pair *matches* when its cosine score is strictly greater than the
threshold, as the encrypted comparison decides (``score > threshold``):

- FMR (false match rate): share of impostor (different-person) pairs that match;
- FNMR (false non-match rate): share of genuine (same-person) pairs that do not match;
- EER: the rate where FMR and FNMR are equal, interpolated between observed thresholds;
- failure to acquire: an image that does not yield one usable face under the enrolment policy.

Pairs come from a CSV ``image_a,image_b,same`` or from LFW's ``pairs.txt`` with its image folder.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veilface.crypto import FaceError, ImageError, InvalidEmbeddingError, VeilfaceError

from .faces import FaceEmbedder, embed_single

__all__ = [
    "AcquisitionFailure",
    "CalibrationError",
    "CalibrationResult",
    "Pair",
    "calibrate",
    "eer",
    "error_rates",
    "fnmr_at_fmr",
    "read_pairs",
    "threshold_at_fmr",
]

ScoreList = Sequence[float] | np.ndarray

_TRUE = frozenset({"1", "true", "yes", "same", "genuine"})
_FALSE = frozenset({"0", "false", "no", "different", "impostor"})


class CalibrationError(VeilfaceError):
    """A pairs file that cannot be read, or pairs that cannot calibrate a threshold."""


@dataclass(frozen=True)
class Pair:
    """Two images and whether they show the same person."""

    image_a: Path
    image_b: Path
    same: bool


@dataclass(frozen=True)
class AcquisitionFailure:
    """An image left out of calibration, and why."""

    image: Path
    reason: str


@dataclass(frozen=True)
class CalibrationResult:
    """The threshold at the target FMR and the error rates measured on the pairs."""

    model_id: str
    target_fmr: float
    threshold: float
    fmr: float
    fnmr: float
    eer: float
    genuine_pairs: int
    impostor_pairs: int
    images: int
    default_threshold: float
    default_fmr: float
    default_fnmr: float
    failures: list[AcquisitionFailure] = field(default_factory=list)
    skipped_pairs: int = 0

    @property
    def fmr_resolution(self) -> float:
        """The smallest non-zero FMR these impostor pairs can measure (1 / their count)."""
        return 1.0 / self.impostor_pairs

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "target_fmr": self.target_fmr,
            "threshold": self.threshold,
            "fmr": self.fmr,
            "fnmr": self.fnmr,
            "eer": self.eer,
            "genuine_pairs": self.genuine_pairs,
            "impostor_pairs": self.impostor_pairs,
            "fmr_resolution": self.fmr_resolution,
            "images": self.images,
            "default_threshold": self.default_threshold,
            "default_fmr": self.default_fmr,
            "default_fnmr": self.default_fnmr,
            "failures_to_acquire": [{"image": str(f.image), "reason": f.reason} for f in self.failures],
            "skipped_pairs": self.skipped_pairs,
        }


def _scores(values: ScoreList, kind: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise CalibrationError(f"no {kind} scores: need at least one {kind} pair")
    if not np.all(np.isfinite(array)):
        raise CalibrationError(f"{kind} scores must be finite")
    return array


def error_rates(genuine_scores: ScoreList, impostor_scores: ScoreList, threshold: float) -> tuple[float, float]:
    """(FMR, FNMR) when pairs scoring strictly above ``threshold`` match."""
    genuine = _scores(genuine_scores, "genuine")
    impostor = _scores(impostor_scores, "impostor")
    return float(np.mean(impostor > threshold)), float(np.mean(genuine <= threshold))


def threshold_at_fmr(impostor: ScoreList, target: float) -> float:
    """The lowest threshold whose FMR on these impostor scores is at most ``target``.

    It is an observed impostor score: the one that ``floor(target * count)`` others exceed. With fewer
    impostor pairs than 1 / target this is the highest impostor score (FMR 0 measured, not proven).
    """
    if not 0.0 <= target < 1.0:
        raise CalibrationError(f"target FMR must lie in [0, 1), got {target}")
    scores = np.sort(_scores(impostor, "impostor"))[::-1]
    return float(scores[math.floor(target * scores.size)])


def fnmr_at_fmr(genuine: ScoreList, impostor: ScoreList, target: float) -> float:
    """FNMR at the threshold :func:`threshold_at_fmr` chooses for ``target``."""
    return error_rates(genuine, impostor, threshold_at_fmr(impostor, target))[1]


def eer(genuine: ScoreList, impostor: ScoreList) -> float:
    """Equal error rate: where FMR and FNMR cross as the threshold rises, linearly interpolated."""
    genuine_sorted = np.sort(_scores(genuine, "genuine"))
    impostor_sorted = np.sort(_scores(impostor, "impostor"))
    candidates = np.unique(np.concatenate([genuine_sorted, impostor_sorted]))
    thresholds = np.concatenate([[candidates[0] - 1.0], candidates])
    fmr = 1.0 - np.searchsorted(impostor_sorted, thresholds, side="right") / impostor_sorted.size
    fnmr = np.searchsorted(genuine_sorted, thresholds, side="right") / genuine_sorted.size
    gap = fnmr - fmr  # rises from -1 (everything matches) to 1 (nothing does)
    crossing = int(np.argmax(gap >= 0))
    if gap[crossing] == 0:
        return float(fmr[crossing])
    before, after = crossing - 1, crossing
    weight = -gap[before] / (gap[after] - gap[before])
    return float(fmr[before] + weight * (fmr[after] - fmr[before]))


def read_pairs(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[Pair]:
    """Labelled pairs from a CSV (``image_a,image_b,same``) or an LFW ``pairs.txt``.

    CSV paths are relative to ``root``, or to the CSV's folder without one. LFW names resolve to
    ``root/<name>/<name>_<NNNN>.jpg``, ``root`` defaulting to the folder of ``pairs.txt``.
    """
    pairs_file = Path(path)
    try:
        text = pairs_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"cannot read pairs file {pairs_file}: {exc}") from exc
    base = Path(root) if root is not None else pairs_file.parent
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," in first:
        pairs = _read_csv(text, base, pairs_file)
    else:
        pairs = _read_lfw(text, base, pairs_file)
    if not pairs:
        raise CalibrationError(f"{pairs_file} holds no pairs")
    return pairs


def _read_csv(text: str, base: Path, source: Path) -> list[Pair]:
    reader = csv.DictReader(text.splitlines())
    columns = {"image_a", "image_b", "same"}
    if not columns <= set(reader.fieldnames or []):
        raise CalibrationError(f"{source}: the CSV header must name the columns image_a,image_b,same")
    pairs = []
    for row in reader:
        label = (row["same"] or "").strip().lower()
        if label not in _TRUE | _FALSE:
            raise CalibrationError(f"{source} line {reader.line_num}: 'same' must be 1 or 0, not {label!r}")
        pairs.append(Pair(base / row["image_a"].strip(), base / row["image_b"].strip(), label in _TRUE))
    return pairs


def _read_lfw(text: str, base: Path, source: Path) -> list[Pair]:
    def image(name: str, number: str) -> Path:
        return base / name / f"{name}_{int(number):04d}.jpg"

    pairs = []
    lines = [line.split() for line in text.splitlines() if line.strip()]
    # The first line holds counts ("300" or "10 300" for folds x pairs), not a pair.
    for number, fields in enumerate(lines[1:], start=2):
        try:
            if len(fields) == 3:
                pairs.append(Pair(image(fields[0], fields[1]), image(fields[0], fields[2]), True))
            elif len(fields) == 4:
                pairs.append(Pair(image(fields[0], fields[1]), image(fields[2], fields[3]), False))
            else:
                raise ValueError(f"{len(fields)} fields")
        except ValueError as exc:
            raise CalibrationError(
                f"{source} line {number}: expected 'name n1 n2' or 'name1 n1 name2 n2' ({exc})"
            ) from exc
    return pairs


def calibrate(
    embedder: FaceEmbedder,
    pairs: Sequence[Pair],
    target_fmr: float = 1e-3,
    *,
    take_largest: bool = False,
    on_image: Callable[[int, int, Path], None] | None = None,
) -> CalibrationResult:
    """Embed every distinct image once, score the pairs, and choose the threshold at ``target_fmr``.

    Images that fail the face policy are failures to acquire: listed, and their pairs skipped.
    ``on_image(done, total, path)`` is called before each image, for progress display.
    """
    images = list(dict.fromkeys(path for pair in pairs for path in (pair.image_a, pair.image_b)))
    embeddings: dict[Path, np.ndarray] = {}
    failures = []
    for index, image in enumerate(images):
        if on_image is not None:
            on_image(index, len(images), image)
        try:
            embeddings[image] = embed_single(embedder, image, take_largest=take_largest)
        except (ImageError, FaceError, InvalidEmbeddingError) as exc:
            # InvalidEmbeddingError: the model returned a zero or non-finite vector for this face.
            failures.append(AcquisitionFailure(image, exc.message))
    genuine: list[float] = []
    impostor: list[float] = []
    for pair in pairs:
        if pair.image_a in embeddings and pair.image_b in embeddings:
            score = float(embeddings[pair.image_a] @ embeddings[pair.image_b])
            (genuine if pair.same else impostor).append(score)
    if not genuine or not impostor:
        raise CalibrationError(
            f"need genuine and impostor pairs with both images usable; got {len(genuine)} genuine and "
            f"{len(impostor)} impostor pairs ({len(failures)} of {len(images)} images failed)"
        )
    threshold = threshold_at_fmr(impostor, target_fmr)
    fmr, fnmr = error_rates(genuine, impostor, threshold)
    default_fmr, default_fnmr = error_rates(genuine, impostor, embedder.default_threshold)
    return CalibrationResult(
        model_id=embedder.model_id,
        target_fmr=target_fmr,
        threshold=threshold,
        fmr=fmr,
        fnmr=fnmr,
        eer=eer(genuine, impostor),
        genuine_pairs=len(genuine),
        impostor_pairs=len(impostor),
        images=len(images),
        default_threshold=embedder.default_threshold,
        default_fmr=default_fmr,
        default_fnmr=default_fnmr,
        failures=failures,
        skipped_pairs=len(pairs) - len(genuine) - len(impostor),
    )
