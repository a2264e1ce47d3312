"""The plaintext stand-in: the same protocol with no encryption, for fast protocol tests and baselines.

Its envelopes say ``scheme: "plaintext"``, which every CKKS cipher refuses, and nothing in the services'
settings can select it: only code that constructs it explicitly (tests, benchmarks) gets it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._envelope import Envelope, EnvelopeKind
from ._errors import InvalidCiphertextError
from ._protocol import (
    Outcome,
    Purpose,
    blinding_factor,
    checks_for,
    outcome_from_values,
    prepare_embedding,
    projection_counts,
    secret_gaussians,
)

SCHEME = "plaintext"
PRESET = "plaintext-insecure"
# Floats do not wrap around, so the fewest projections do; they are checked all the same.
PROJECTIONS = projection_counts(math.inf)


class _PlainBase:
    preset = PRESET

    def __init__(self, *, key_id: str, model_id: str = "", dimension: int = 0) -> None:
        self.key_id = key_id
        self.model_id = model_id
        self.dimension = dimension

    def _open(self, data: bytes) -> np.ndarray:
        envelope = Envelope.from_bytes(data, kind=EnvelopeKind.EMBEDDING)
        envelope.expect(
            scheme=SCHEME,
            key_id=self.key_id,
            model_id=self.model_id,
            dimension=self.dimension,
            preset=PRESET,
            extra=("nonce",),
        )
        if len(envelope.payload) != 8 * self.dimension:
            raise InvalidCiphertextError("plaintext stand-in vector has the wrong length", field="size")
        vector = np.frombuffer(envelope.payload, dtype="<f8")
        if not np.all(np.isfinite(vector)):
            raise InvalidCiphertextError("plaintext stand-in vector is not finite", field="ciphertext")
        return vector


class PlaintextClientCipher(_PlainBase):
    def encrypt(self, embedding: Any) -> bytes:
        vector = prepare_embedding(embedding, self.dimension)
        header = {
            "scheme": SCHEME,
            "key_id": self.key_id,
            "model_id": self.model_id,
            "dimension": self.dimension,
            "preset": PRESET,
            # Random, as a CKKS encryption is: the matcher refuses probe bytes it has answered before.
            "nonce": secrets.token_hex(16),
        }
        return Envelope(EnvelopeKind.EMBEDDING, header, vector.astype("<f8").tobytes()).to_bytes()


class PlaintextMatcherCipher(_PlainBase):
    projections = PROJECTIONS

    def check(self, ciphertext: bytes) -> None:
        self._open(ciphertext)

    def blind_norm(self, template: bytes) -> bytes:
        return self._blinded(Purpose.ENROL, self._open(template), None, None)

    def compare(self, template: bytes, probe: bytes, threshold: float) -> bytes:
        return self._blinded(Purpose.VERIFY, self._open(probe), self._open(template), threshold)

    def _blinded(
        self,
        purpose: Purpose,
        probe: np.ndarray,
        template: np.ndarray | None,
        threshold: float | None,
        factors: Sequence[int] | None = None,
    ) -> bytes:
        """As the CKKS matcher: |x|^2 - 1, projections onto fresh secret unit Gaussian directions, and for a
        verification the blinded score."""
        checks = checks_for(purpose, threshold)
        if factors is None:
            factors = [blinding_factor(limit) for _, _, limit in checks]
        if len(factors) != len(checks):
            raise ValueError(f"expected {len(checks)} blinding factors, got {len(factors)}")
        count = self.projections[purpose]
        directions = secret_gaussians(count * self.dimension).reshape(count, self.dimension)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        values = [float(probe @ probe) - 1.0, *(directions @ probe).tolist()]
        if template is not None:
            (sign, cut, _), factor = checks[0], factors[0]
            values.append(sign * factor * (float(template @ probe) - cut))
        header = {"scheme": SCHEME, "key_id": self.key_id, "preset": PRESET, "purpose": purpose.value}
        return Envelope(EnvelopeKind.BLINDED, header, np.asarray(values, dtype="<f8").tobytes()).to_bytes()


class PlaintextAuthorityCipher(_PlainBase):
    projections = PROJECTIONS

    def _values(self, blinded: bytes) -> tuple[Purpose, list[float]]:
        envelope = Envelope.from_bytes(blinded, kind=EnvelopeKind.BLINDED)
        envelope.expect(scheme=SCHEME, key_id=self.key_id, preset=PRESET, extra=("purpose",))
        try:
            purpose = Purpose(envelope.header.get("purpose"))
        except ValueError:
            raise InvalidCiphertextError("blinded result has an unknown purpose", field="purpose") from None
        if len(envelope.payload) != 8 * purpose.values(self.projections[purpose]):
            raise InvalidCiphertextError("blinded result has the wrong length", field="size")
        values = np.frombuffer(envelope.payload, dtype="<f8")
        if not np.all(np.isfinite(values)):
            raise InvalidCiphertextError("blinded result is not finite", field="ciphertext")
        return purpose, values.tolist()

    def decide(self, blinded: bytes) -> tuple[Purpose, Outcome]:
        purpose, values = self._values(blinded)
        return purpose, outcome_from_values(purpose, values, self.projections[purpose])
