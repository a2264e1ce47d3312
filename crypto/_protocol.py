"""What client, matcher and authority do with ciphertexts, independent of the scheme underneath."""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from enum import Enum
from typing import Any, Protocol

import numpy as np

from ._errors import InvalidCiphertextError, InvalidEmbeddingError
from ._presets import MAX_BLINDING_BITS

# A probe or template must have 1 - eps <= |x|^2 <= 1 + eps. Scaling by 1.2 gives 1.44, by 1.02 gives 1.04.
# The check's own error (std 2e-4 to 1e-3, up to 8.7e-3 for embeddings dominated by one component, measured
# over 200-1,000 probes) must stay well inside eps, so eps = 0.02: a probe scaled by up to 1.01 passes.
NORM_TOLERANCE = 0.02
# The norm check compares c |p|^2 with c (1 +- eps): the matcher scales the probe by the integer c before
# conjugating it, so the conjugation's key-switching noise (q/P = 2^11 at N=4096) shrinks c times relative
# to the value (std of |p|^2 at c = 64: 1.8e-4 at 512-D, 1.0e-3 at 128-D, over 300 and 1,000 probes). Values live
# mod q: in units of Delta^2 2/N the modulus is M = q / 2^47 ~ 8192 at N=4096, so |p|^2 - 1 that is a
# multiple of M / c wraps to ~0 and passes. A larger c shrinks that period (c = 64: |p|^2 = 129, a probe
# scaled by 11.36), which is why c stays small; the larger preset has M = 2^52. See README, known limits.
NORM_GAIN = 64
NORM_BLINDING_BITS = 4  # r for the norm checks: [1, 16]; what it blurs, |p|^2 - 1, is ~0 for every honest probe
# Largest |r (v - t)| an honest value can have.
_SLACK = 1e-3
NORM_VALUE_BOUND = (1 << NORM_BLINDING_BITS) * NORM_GAIN * (2 * NORM_TOLERANCE + _SLACK)
SCORE_VALUE_BOUND = (1 << MAX_BLINDING_BITS) * (2 + 2 * NORM_TOLERANCE + _SLACK)


class Outcome(str, Enum):
    MATCH = "match"
    NO_MATCH = "no_match"
    NOT_NORMALISED = "not_normalised"
    NORMALISED = "normalised"


class Purpose(str, Enum):
    """Why the matcher asks: an enrolment's norm check, or a verification (norm check and score)."""

    ENROL = "enrol"
    VERIFY = "verify"

    @property
    def checks(self) -> int:
        return 2 if self is Purpose.ENROL else 3


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


def blinding_factor(bits: int = MAX_BLINDING_BITS) -> int:
    """A fresh r, log-uniform in [1, 2**bits], from the operating system's CSPRNG."""
    u = secrets.randbits(53) / float(1 << 53)
    return max(1, min(1 << bits, int(2.0 ** (u * bits))))


def checks_for(purpose: Purpose, threshold: float | None) -> list[tuple[int, float, int]]:
    """(sign, t, bits of r) per blinded value; a value sign * r * (v - t) > 0 means the check passed.

    Order: c |p|^2 > c (1 - eps), c |p|^2 < c (1 + eps), then (for verification) score > threshold.
    """
    checks = [
        (1, NORM_GAIN * (1.0 - NORM_TOLERANCE), NORM_BLINDING_BITS),
        (-1, NORM_GAIN * (1.0 + NORM_TOLERANCE), NORM_BLINDING_BITS),
    ]
    if purpose is Purpose.VERIFY:
        if threshold is None or not math.isfinite(threshold) or not -1.0 <= threshold <= 1.0:
            raise InvalidEmbeddingError("threshold must be a finite cosine similarity in [-1, 1]")
        checks.append((1, float(threshold), MAX_BLINDING_BITS))
    return checks


def outcome_from_values(purpose: Purpose, values: Sequence[float]) -> Outcome:
    """One decision from the blinded values: their signs, and bounds that catch wrapped-around values."""
    if len(values) != purpose.checks:
        raise InvalidCiphertextError(
            f"expected {purpose.checks} blinded values for {purpose.value}, got {len(values)}", field="checks"
        )
    if not all(0.0 < value <= NORM_VALUE_BOUND for value in values[:2]):
        return Outcome.NOT_NORMALISED
    if purpose is Purpose.ENROL:
        return Outcome.NORMALISED
    if abs(values[2]) > SCORE_VALUE_BOUND:
        return Outcome.NOT_NORMALISED
    return Outcome.MATCH if values[2] > 0.0 else Outcome.NO_MATCH


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
