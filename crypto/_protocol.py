"""What client, matcher and authority do with ciphertexts, independent of the scheme underneath."""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Sequence
from enum import Enum
from typing import Any, Protocol

import numpy as np

from ._errors import InvalidCiphertextError, InvalidEmbeddingError

# What the authority reads per request, and what it refuses:
#
# - |x|^2 - 1 for the probe (or template): its squared norm, over real and imaginary parts of every slot,
#   must be within NORM_TOLERANCE of 1. Scaling by 1.2 gives 1.44, by 1.02 gives 1.04; a probe scaled by up
#   to 1.01 passes. By Cauchy-Schwarz the score of a probe that passes (without a wrap, below) is at most
#   what the honest direction scores. Not blinded: for every honest probe it is 0 up to the encryption's noise.
# - projections <x, g> onto fresh secret Gaussian directions g, each scaled so that its part in the subspace
#   honest embeddings span has unit norm: by Cauchy-Schwarz an honest |<x, g>| is at most |x|, within
#   PROJECTION_BOUND. Not blinded either: g is secret and fresh, so their distribution is the same whatever x.
# - r (score - threshold), with r log-uniform in [1, SCORE_BLINDING_LIMIT]: the sign decides.
#
# Any value larger than an honest input can make is refused: that catches values that wrapped around q.
NORM_TOLERANCE = 0.02
_SLACK = 1e-3
PROJECTION_BOUND = math.sqrt(1.0 + NORM_TOLERANCE) + _SLACK
# A CKKS score is read doubled (see _ckks): 2 r |s - t| <= 2 * 1000 * (2 + 2 eps) stays below q/2 = 4096 units.
SCORE_BLINDING_LIMIT = 1000
SCORE_VALUE_BOUND = SCORE_BLINDING_LIMIT * (2 + 2 * NORM_TOLERANCE + _SLACK)


class Outcome(str, Enum):
    MATCH = "match"
    NO_MATCH = "no_match"
    NOT_NORMALISED = "not_normalised"
    NORMALISED = "normalised"


class Purpose(str, Enum):
    """Why the matcher asks: an enrolment's checks, or a verification (the same checks and the score)."""

    ENROL = "enrol"
    VERIFY = "verify"

    @property
    def checks(self) -> int:
        """Values besides the projections: the norm, and for a verification the score. (The authority service
        caps a blinded result at ``Purpose.VERIFY.checks`` full ciphertexts; the compact forms stay below.)"""
        return 1 if self is Purpose.ENROL else 2

    def values(self, projections: int) -> int:
        """Values the authority reads: the norm, ``projections`` projections, then (verification) the score."""
        return self.checks + projections


# Values live mod q, so a crafted probe whose squared norm is 1 + k M (M the norm's period, q over the unit of
# the readout) passes the norm check. Such a probe is at least sqrt(1 + M) long, and a fresh secret Gaussian
# projection <p, g> of it is N(0, |p|^2 |g|^2) whatever its direction, while an honest one stays within
# PROJECTION_BOUND: it passes one projection with probability erf(sqrt(d (1 + eps) / (2 (1 + M)))) (d the
# dimension honest embeddings span). Independent projections multiply; PROJECTION_RATE is the rate aimed at
# for PROJECTION_DIMENSION, the largest model dimension (dlib: 128, ArcFace: 512). An enrolment aims lower:
# a wolf template that gets in stays, and matches whoever verifies against it.
PROJECTION_RATE = {Purpose.VERIFY: 2e-3, Purpose.ENROL: 1e-4}
PROJECTION_DIMENSION = 512


def wrap_pass_rate(dimension: int, period: float) -> float:
    """Probability that a probe of squared norm 1 + period passes one projection check."""
    return math.erf(math.sqrt(dimension * (1.0 + NORM_TOLERANCE) / (2.0 * (1.0 + period))))


def projection_counts(period: float) -> dict[Purpose, int]:
    """How many projections a request carries, per purpose: the smallest even count (two are read per
    ciphertext) that brings a wrapped probe's pass rate to PROJECTION_RATE at PROJECTION_DIMENSION; at
    least two."""
    rate = wrap_pass_rate(PROJECTION_DIMENSION, period)
    counts = {}
    for purpose, target in PROJECTION_RATE.items():
        count = 2
        while rate**count > target:
            count += 2
        counts[purpose] = count
    return counts


def prepare_embedding(embedding: Any, dimension: int) -> np.ndarray:
    """Check an embedding (1-D, finite, expected dimension, non-zero) and L2-normalise it."""
    try:
        vector = np.asarray(embedding, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidEmbeddingError("embedding is not a numeric vector") from None
    if vector.ndim != 1:
        raise InvalidEmbeddingError(f"embedding must be 1-D, got {vector.ndim} dimensions")
    if vector.shape[0] != dimension:
        raise InvalidEmbeddingError(f"embedding has dimension {vector.shape[0]}, the model uses {dimension}")
    if not np.all(np.isfinite(vector)):
        raise InvalidEmbeddingError("embedding contains NaN or infinite values")
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise InvalidEmbeddingError("embedding is all zeros and cannot be normalised")
    return vector / norm


def blinding_factor(limit: int = SCORE_BLINDING_LIMIT) -> int:
    """A fresh r, log-uniform in [1, limit], from the operating system's CSPRNG."""
    u = secrets.randbits(53) / float(1 << 53)
    return max(1, min(limit, int(limit**u)))


def secret_gaussians(count: int) -> np.ndarray:
    """``count`` independent standard normal values from os.urandom (Box-Muller), never from numpy's generators."""
    pairs = (count + 1) // 2
    words = np.frombuffer(os.urandom(8 * pairs), dtype="<u4")
    uniform = (words.astype(np.float64) + 0.5) / float(1 << 32)  # in (0, 1): the logarithm is finite
    radius = np.sqrt(-2.0 * np.log(uniform[:pairs]))
    angle = 2.0 * np.pi * uniform[pairs:]
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:count]


def checks_for(purpose: Purpose, threshold: float | None) -> list[tuple[int, float, int]]:
    """(sign, t, limit of r) per blinded value, sign * r * (v - t) > 0 meaning the check passed: for a
    verification the score's (score > threshold); an enrolment blinds nothing."""
    if purpose is Purpose.ENROL:
        return []
    if threshold is None or not math.isfinite(threshold) or not -1.0 <= threshold <= 1.0:
        raise InvalidEmbeddingError("threshold must be a finite cosine similarity in [-1, 1]")
    return [(1, float(threshold), SCORE_BLINDING_LIMIT)]


def outcome_from_values(purpose: Purpose, values: Sequence[float], projections: int) -> Outcome:
    """One decision from what the authority read: the norm within its tolerance, every projection within its
    bound, then the score's sign, refusing a score larger than an honest one can be (a wrapped-around one)."""
    if len(values) != purpose.values(projections):
        raise InvalidCiphertextError(
            f"expected {purpose.values(projections)} values for {purpose.value}, got {len(values)}", field="checks"
        )
    if not abs(values[0]) <= NORM_TOLERANCE:
        return Outcome.NOT_NORMALISED
    if not all(abs(value) <= PROJECTION_BOUND for value in values[1 : 1 + projections]):
        return Outcome.NOT_NORMALISED
    if purpose is Purpose.ENROL:
        return Outcome.NORMALISED
    score = values[-1]
    if not abs(score) <= SCORE_VALUE_BOUND:
        return Outcome.NOT_NORMALISED
    return Outcome.MATCH if score > 0.0 else Outcome.NO_MATCH


class ClientCipher(Protocol):
    """Runs on the user's device: normalises and encrypts an embedding under the public key."""

    key_id: str
    model_id: str
    dimension: int
    preset: str

    def encrypt(self, embedding: Any) -> bytes: ...


class MatcherCipher(Protocol):
    """Runs at the operator: checks ciphertexts and blinds comparisons; never sees a number."""

    key_id: str
    model_id: str
    dimension: int
    preset: str

    def check(self, ciphertext: bytes) -> None: ...

    def blind_norm(self, template: bytes) -> bytes: ...

    def compare(self, template: bytes, probe: bytes, threshold: float) -> bytes: ...


class AuthorityCipher(Protocol):
    """Runs at the key holder: turns blinded values into one decision."""

    key_id: str
    preset: str

    def decide(self, blinded: bytes) -> tuple[Purpose, Outcome]: ...
