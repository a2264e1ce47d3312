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
import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, ClassVar

import numpy as np

from veilface.crypto import FaceError, ImageError, InvalidEmbeddingError, VeilfaceError

from .faces import FaceEmbedder, embed_single

__all__ = [
    "AcquisitionFailure",
    "CalibrationError",
    "CalibrationResult",
    "ExponentialTail",
    "GalleryLimit",
    "NormalFit",
    "Pair",
    "PairScores",
    "SearchCalibration",
    "SearchThreshold",
    "calibrate",
    "calibrate_search",
    "eer",
    "error_rates",
    "fit_exponential_tail",
    "fit_normal",
    "fmr_for_fpir",
    "fnmr_at_fmr",
    "fpir_at",
    "max_gallery",
    "read_pairs",
    "score_pairs",
    "search_calibration",
    "search_threshold",
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

    def to_dict(self) -> dict[str, str]:
        return {"image": str(self.image), "reason": self.reason}


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
        document = dataclasses.asdict(self)
        del document["failures"]
        return {
            **document,
            "fmr_resolution": self.fmr_resolution,
            "failures_to_acquire": [failure.to_dict() for failure in self.failures],
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
    scored = score_pairs(embedder, pairs, take_largest=take_largest, on_image=on_image)
    genuine, impostor, images, failures = scored.genuine, scored.impostor, scored.images, scored.failures
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
        images=images,
        default_threshold=embedder.default_threshold,
        default_fmr=default_fmr,
        default_fnmr=default_fnmr,
        failures=failures,
        skipped_pairs=scored.skipped_pairs,
    )


@dataclass(frozen=True)
class PairScores:
    """The cosine scores of labelled pairs, and the images that could not be used."""

    genuine: list[float]
    impostor: list[float]
    images: int
    failures: list[AcquisitionFailure]
    skipped_pairs: int


def score_pairs(
    embedder: FaceEmbedder,
    pairs: Sequence[Pair],
    *,
    take_largest: bool = False,
    on_image: Callable[[int, int, Path], None] | None = None,
) -> PairScores:
    """Embed every distinct image once and score the pairs whose two images are both usable.

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
    return PairScores(genuine, impostor, len(images), failures, len(pairs) - len(genuine) - len(impostor))


# 1:N search. A probe of a person who is not enrolled is compared with all G templates of the gallery; the
# search reports a duplicate when any of them scores above the threshold. The false-positive
# identification rate FPIR is the chance of that, the false-negative identification rate FNIR the chance
# that an enrolled person's probe is not found (ISO/IEC 19795-1). With FMR per comparison f:
#
#     FPIR(τ, G) = 1 - (1 - f(τ))^G        FNIR(τ) = FNMR(τ)
#
# FPIR 1% at G = 1M needs f ≈ 1e-8, far below what a few hundred impostor pairs can observe (1 / count),
# so f is extrapolated from tails fitted to the impostor scores.

#: Fewest impostor scores a tail is fitted to, and fewest genuine scores FNIR is estimated from.
MIN_IMPOSTOR_SCORES = 20
MIN_GENUINE_SCORES = 5
#: The exponential tail is fitted to this share of the impostor scores (the highest), and at least
#: :data:`MIN_TAIL_SCORES` of them.
TAIL_SHARE = 0.2
MIN_TAIL_SCORES = 10
#: The default bound on FNIR under which a gallery size counts as usable.
DEFAULT_MAX_FNIR = 0.05
DEFAULT_TARGET_FPIR = 0.01
#: Gallery sizes reported by default.
DEFAULT_GALLERIES = (1_000, 10_000, 100_000, 1_000_000)

#: The assumptions behind every search figure, carried into the reports.
SEARCH_ASSUMPTIONS = (
    "FPIR = 1 - (1 - FMR)^G: the G scores of a probe that is not enrolled are taken as independent draws "
    "from the impostor distribution; a probe that resembles many faces makes the real FPIR higher.",
    "FNIR = FNMR: an enrolled person is missed when the mate's score is at or below the threshold; the "
    "chance that a non-mate's score above the threshold 'finds' the person anyway is ignored.",
    "FMR below 1 / (impostor pairs) cannot be observed: it is extrapolated from two fits to the impostor "
    "scores, a normal distribution and an exponential tail over the highest scores, and the higher "
    "threshold of the two governs. Cosines cannot exceed 1, so a threshold at or above 1 is unattainable.",
    "FNIR is estimated from a normal fit to the genuine scores and also counted on the genuine pairs; a "
    "gallery size counts as usable when both are within the bound.",
)


@dataclass(frozen=True)
class NormalFit:
    """Scores fitted by a normal distribution (sample mean and standard deviation)."""

    mean: float
    sd: float
    method: ClassVar[str] = "normal"

    def fmr(self, threshold: float) -> float:
        """The share of scores above ``threshold`` (the upper tail)."""
        return 0.5 * math.erfc((threshold - self.mean) / (self.sd * math.sqrt(2.0)))

    def threshold(self, fmr: float) -> float:
        """The threshold with ``fmr`` of the distribution above it."""
        return self.mean - self.sd * NormalDist().inv_cdf(fmr)

    def below(self, threshold: float) -> float:
        """The share of scores at or below ``threshold`` (FNMR, when fitted to genuine scores)."""
        return 0.5 * math.erfc((self.mean - threshold) / (self.sd * math.sqrt(2.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class ExponentialTail:
    """The highest impostor scores fitted by an exponential tail (a generalized Pareto tail of shape 0).

    ``share`` of the scores lie above ``start``; their excesses over it are exponential with mean
    ``scale`` (its maximum-likelihood estimate), so FMR(t) = share * exp(-(t - start) / scale). Cosines are
    bounded by 1, so their true tail is lighter (shape < 0): this fit overstates FMR, it is the cautious
    one. Below ``start`` the same formula is continued, capped at 1.
    """

    start: float
    scale: float
    share: float
    scores: int
    method: ClassVar[str] = "exponential-tail"

    def fmr(self, threshold: float) -> float:
        return min(1.0, self.share * math.exp(-(threshold - self.start) / self.scale))

    def threshold(self, fmr: float) -> float:
        return self.start + self.scale * math.log(self.share / fmr)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}


TailFit = NormalFit | ExponentialTail


def _enough(values: ScoreList, kind: str, minimum: int) -> np.ndarray:
    scores = _scores(values, kind)
    if scores.size < minimum:
        raise CalibrationError(f"need at least {minimum} {kind} scores to fit a search threshold, got {scores.size}")
    return scores


def fit_normal(scores: ScoreList, kind: str = "impostor") -> NormalFit:
    """The sample mean and standard deviation (n - 1) of ``scores``."""
    array = _scores(scores, kind)
    sd = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
    if not sd > 0.0:
        raise CalibrationError(f"the {kind} scores do not vary: no distribution can be fitted to them")
    return NormalFit(float(np.mean(array)), sd)


def fit_exponential_tail(impostor: ScoreList) -> ExponentialTail:
    """An exponential tail over the highest :data:`TAIL_SHARE` of the impostor scores (at least 10)."""
    scores = np.sort(_scores(impostor, "impostor"))[::-1]
    count = min(max(MIN_TAIL_SCORES, math.ceil(TAIL_SHARE * scores.size)), scores.size - 1)
    if count < 2:
        raise CalibrationError("need at least 3 impostor scores to fit a tail")
    start = float(scores[count])
    scale = float(np.mean(scores[:count] - start))
    if not scale > 0.0:
        raise CalibrationError("the highest impostor scores do not vary: no tail can be fitted to them")
    return ExponentialTail(start, scale, count / scores.size, count)


def fmr_for_fpir(fpir: float, gallery: int) -> float:
    """The FMR per comparison at which G independent comparisons give ``fpir``: 1 - (1 - fpir)^(1/G)."""
    return -math.expm1(math.log1p(-fpir) / gallery)


def fpir_at(fmr: float, gallery: int) -> float:
    """1 - (1 - fmr)^G: the chance that at least one of G independent impostor comparisons matches."""
    return 1.0 if fmr >= 1.0 else -math.expm1(gallery * math.log1p(-fmr))


def _check_search(gallery: int, target_fpir: float) -> None:
    if gallery < 1:
        raise CalibrationError(f"the gallery must hold at least one template, got {gallery}")
    if not 0.0 < target_fpir < 1.0:
        raise CalibrationError(f"target FPIR must lie in (0, 1), got {target_fpir}")


@dataclass(frozen=True)
class SearchThreshold:
    """The search threshold for ``target_fpir`` at one gallery size, and its error rates.

    ``fmr``, ``fpir`` and ``fnir`` are model figures (see :data:`SEARCH_ASSUMPTIONS`); ``fmr_observed``
    and ``fnir_observed`` are counted on the pairs. ``thresholds`` and ``fnirs`` give the threshold each
    impostor fit alone would set and the fitted FNIR there (1 at or above cosine 1). ``extrapolated`` is
    true when the FMR needed is below what the impostor pairs can observe; ``attainable`` is false when
    the threshold is at or above 1.
    """

    gallery: int
    target_fpir: float
    threshold: float
    method: str
    thresholds: dict[str, float]
    fnirs: dict[str, float]
    fmr: float
    fpir: float
    fnir: float
    fnir_observed: float
    fmr_observed: float
    extrapolated: bool
    attainable: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GalleryLimit:
    """The largest gallery for which one threshold keeps FPIR <= target and FNIR <= ``max_fnir``.

    ``gallery`` is 0 when not even one template can be searched so, None when the fits set no limit.
    ``galleries`` gives the limit under each impostor fit alone; the smallest governs.
    """

    target_fpir: float
    max_fnir: float
    gallery: int | None
    threshold: float
    fmr: float
    method: str
    galleries: dict[str, int | None]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Fits:
    impostor: np.ndarray
    genuine: np.ndarray
    normal: NormalFit
    tail: ExponentialTail
    genuine_fit: NormalFit

    @classmethod
    def of(cls, impostor_scores: ScoreList, genuine_scores: ScoreList) -> _Fits:
        impostor = _enough(impostor_scores, "impostor", MIN_IMPOSTOR_SCORES)
        genuine = _enough(genuine_scores, "genuine", MIN_GENUINE_SCORES)
        return cls(
            impostor, genuine, fit_normal(impostor), fit_exponential_tail(impostor), fit_normal(genuine, "genuine")
        )

    @property
    def tails(self) -> tuple[TailFit, ...]:
        return (self.normal, self.tail)

    def fmr(self, threshold: float) -> tuple[float, str]:
        """The highest FMR the tails give at ``threshold``, and the tail that gives it."""
        return max((tail.fmr(threshold), tail.method) for tail in self.tails)

    def point(self, gallery: int, target_fpir: float) -> SearchThreshold:
        _check_search(gallery, target_fpir)
        fmr_needed = fmr_for_fpir(target_fpir, gallery)
        if not fmr_needed > 0.0:
            raise CalibrationError(f"FPIR {target_fpir:g} at a gallery of {gallery} needs an FMR below 1e-308")
        thresholds = {tail.method: tail.threshold(fmr_needed) for tail in self.tails}
        method = max(thresholds, key=lambda name: thresholds[name])
        threshold = thresholds[method]
        fmr = self.fmr(threshold)[0]
        attainable = threshold < 1.0
        fnirs = {name: self.genuine_fit.below(value) if value < 1.0 else 1.0 for name, value in thresholds.items()}
        return SearchThreshold(
            gallery=gallery,
            target_fpir=target_fpir,
            threshold=threshold,
            method=method,
            thresholds=thresholds,
            fnirs=fnirs,
            fmr=fmr,
            fpir=fpir_at(fmr, gallery),
            fnir=fnirs[method],
            fnir_observed=float(np.mean(self.genuine <= threshold)),
            fmr_observed=float(np.mean(self.impostor > threshold)),
            extrapolated=fmr_needed < 1.0 / self.impostor.size,
            attainable=attainable,
        )

    def limit(self, target_fpir: float, max_fnir: float) -> GalleryLimit:
        _check_search(1, target_fpir)
        if not 0.0 < max_fnir < 1.0:
            raise CalibrationError(f"the FNIR bound must lie in (0, 1), got {max_fnir}")
        # The highest threshold at which FNIR stays within the bound, fitted and counted: FNMR counts
        # genuine scores at or below the threshold, so it must stay below the (k+1)-th lowest of them.
        genuine = np.sort(self.genuine)
        allowed = min(math.floor(max_fnir * genuine.size + 1e-9), genuine.size - 1)
        counted = float(np.nextafter(genuine[allowed], -np.inf))
        threshold = min(self.genuine_fit.threshold(1.0 - max_fnir), counted, float(np.nextafter(1.0, 0.0)))
        galleries = {tail.method: _largest_gallery(tail.fmr(threshold), target_fpir) for tail in self.tails}
        fmr, method = self.fmr(threshold)
        return GalleryLimit(
            target_fpir=target_fpir,
            max_fnir=max_fnir,
            gallery=galleries[method],
            threshold=threshold,
            fmr=fmr,
            method=method,
            galleries=galleries,
        )


def _largest_gallery(fmr: float, target_fpir: float) -> int | None:
    if fmr <= 0.0:
        return None
    if fmr >= target_fpir:
        return 0
    gallery = math.floor(math.log1p(-target_fpir) / math.log1p(-fmr))
    while gallery > 0 and fpir_at(fmr, gallery) > target_fpir:  # guard the floor against rounding
        gallery -= 1
    return gallery


def search_threshold(
    impostor_scores: ScoreList, genuine_scores: ScoreList, gallery: int, target_fpir: float
) -> SearchThreshold:
    """The lowest threshold whose FPIR at ``gallery`` templates is at most ``target_fpir`` under both tails.

    Raises :class:`CalibrationError` for too few or constant scores, and when the target is unattainable
    (the threshold would be at or above 1, the highest cosine).
    """
    point = _Fits.of(impostor_scores, genuine_scores).point(gallery, target_fpir)
    if not point.attainable:
        raise CalibrationError(
            f"FPIR {target_fpir:g} at a gallery of {gallery} is unattainable: it needs an FMR of "
            f"{fmr_for_fpir(target_fpir, gallery):.2g} per comparison, which the {point.method} fit puts "
            "above cosine 1"
        )
    return point


def max_gallery(
    impostor_scores: ScoreList,
    genuine_scores: ScoreList,
    target_fpir: float = DEFAULT_TARGET_FPIR,
    max_fnir: float = DEFAULT_MAX_FNIR,
) -> GalleryLimit:
    """The largest gallery one threshold can search with FPIR <= ``target_fpir`` and FNIR <= ``max_fnir``."""
    return _Fits.of(impostor_scores, genuine_scores).limit(target_fpir, max_fnir)


@dataclass(frozen=True)
class SearchCalibration:
    """Search thresholds per gallery size, the fits behind them and the largest usable gallery."""

    model_id: str
    default_threshold: float
    target_fpir: float
    max_fnir: float
    genuine_pairs: int
    impostor_pairs: int
    impostor_fit: NormalFit
    tail_fit: ExponentialTail
    genuine_fit: NormalFit
    default_fmr: dict[str, float]
    points: list[SearchThreshold]
    limit: GalleryLimit
    images: int = 0
    failures: list[AcquisitionFailure] = field(default_factory=list)
    skipped_pairs: int = 0

    def to_dict(self) -> dict[str, Any]:
        default_fmr = max(self.default_fmr.values())
        return {
            "model_id": self.model_id,
            "target_fpir": self.target_fpir,
            "max_fnir": self.max_fnir,
            "genuine_pairs": self.genuine_pairs,
            "impostor_pairs": self.impostor_pairs,
            "fmr_resolution": 1.0 / self.impostor_pairs,
            "images": self.images,
            "failures_to_acquire": [failure.to_dict() for failure in self.failures],
            "skipped_pairs": self.skipped_pairs,
            "extrapolated": any(point.extrapolated for point in self.points),
            "impostor_fits": [self.impostor_fit.to_dict(), self.tail_fit.to_dict()],
            "genuine_fit": self.genuine_fit.to_dict(),
            "one_to_one": {
                "threshold": self.default_threshold,
                "fmr": dict(self.default_fmr),
                "false_duplicates_per_million": 1e6 * default_fmr,
            },
            "galleries": [point.to_dict() for point in self.points],
            "max_gallery": self.limit.to_dict(),
            "assumptions": list(SEARCH_ASSUMPTIONS),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        normal, tail = self.impostor_fit, self.tail_fit
        lines = [
            f"Search thresholds for FPIR <= {self.target_fpir:g}, model {self.model_id}: "
            f"{self.genuine_pairs} genuine and {self.impostor_pairs} impostor pairs "
            f"({self.images} images, {len(self.failures)} failures to acquire, {self.skipped_pairs} pairs "
            "skipped). Figures are extrapolated from fitted score distributions, not observed.",
            "",
            f"- impostor scores, normal fit: mean {normal.mean:.4f}, sd {normal.sd:.4f}",
            f"- impostor scores, exponential tail over the highest {tail.scores} ({tail.share:.0%}): above "
            f"{tail.start:.4f}, mean excess {tail.scale:.4f}",
            f"- genuine scores, normal fit: mean {self.genuine_fit.mean:.4f}, sd {self.genuine_fit.sd:.4f}",
            f"- the 1:1 threshold {self.default_threshold:g}: FMR "
            + ", ".join(f"{value:.2g} ({name})" for name, value in self.default_fmr.items())
            + f", i.e. {1e6 * max(self.default_fmr.values()):,.0f} false duplicates per probe against 1M",
            "",
            "| gallery | threshold | governed by | FMR per comparison | FPIR | FNIR (fit) | FNIR (counted) "
            "| normal fit alone: τ, FNIR | exp. tail alone: τ, FNIR | extrapolated |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for point in self.points:
            threshold = f"{point.threshold:.4f}" if point.attainable else f"unattainable ({point.threshold:.3f})"
            alone = [
                f"{point.thresholds[name]:.4f}, {point.fnirs[name]:.1%}"
                for name in (NormalFit.method, ExponentialTail.method)
            ]
            lines.append(
                f"| {point.gallery:,} | {threshold} | {point.method} | {point.fmr:.2e} | {point.fpir:.4f} "
                f"| {point.fnir:.1%} | {point.fnir_observed:.1%} | {alone[0]} | {alone[1]} "
                f"| {str(point.extrapolated).lower()} |"
            )
        limit = self.limit
        usable = "no limit" if limit.gallery is None else f"{limit.gallery:,} templates"
        lines += [
            "",
            f"Largest gallery with FPIR <= {limit.target_fpir:g} and FNIR <= {limit.max_fnir:g}: {usable} "
            f"(threshold {limit.threshold:.4f}, FMR {limit.fmr:.2e} per comparison, {limit.method}); "
            + ", ".join(f"{name} fit alone: {value}" for name, value in limit.galleries.items())
            + ".",
            "",
            "Assumptions:",
            "",
            *(f"- {assumption}" for assumption in SEARCH_ASSUMPTIONS),
        ]
        return "\n".join(lines) + "\n"


def search_calibration(
    genuine_scores: ScoreList,
    impostor_scores: ScoreList,
    galleries: int | Sequence[int] = DEFAULT_GALLERIES,
    target_fpir: float = DEFAULT_TARGET_FPIR,
    *,
    max_fnir: float = DEFAULT_MAX_FNIR,
    model_id: str,
    default_threshold: float,
) -> SearchCalibration:
    """Search thresholds at each gallery size from scores; unattainable sizes are reported, not raised."""
    fits = _Fits.of(impostor_scores, genuine_scores)
    sizes = [galleries] if isinstance(galleries, int) else list(galleries)
    if not sizes:
        raise CalibrationError("name at least one gallery size")
    return SearchCalibration(
        model_id=model_id,
        default_threshold=default_threshold,
        target_fpir=target_fpir,
        max_fnir=max_fnir,
        genuine_pairs=fits.genuine.size,
        impostor_pairs=fits.impostor.size,
        impostor_fit=fits.normal,
        tail_fit=fits.tail,
        genuine_fit=fits.genuine_fit,
        default_fmr={tail.method: tail.fmr(default_threshold) for tail in fits.tails},
        points=[fits.point(size, target_fpir) for size in sizes],
        limit=fits.limit(target_fpir, max_fnir),
    )


def calibrate_search(
    embedder: FaceEmbedder,
    pairs: Sequence[Pair],
    galleries: int | Sequence[int] = DEFAULT_GALLERIES,
    target_fpir: float = DEFAULT_TARGET_FPIR,
    *,
    max_fnir: float = DEFAULT_MAX_FNIR,
    take_largest: bool = False,
    on_image: Callable[[int, int, Path], None] | None = None,
) -> SearchCalibration:
    """``veilface calibrate --search``: score the pairs as :func:`calibrate` does, then fit search thresholds."""
    scored = score_pairs(embedder, pairs, take_largest=take_largest, on_image=on_image)
    result = search_calibration(
        scored.genuine,
        scored.impostor,
        galleries,
        target_fpir,
        max_fnir=max_fnir,
        model_id=embedder.model_id,
        default_threshold=embedder.default_threshold,
    )
    return dataclasses.replace(
        result, images=scored.images, failures=scored.failures, skipped_pairs=scored.skipped_pairs
    )
