"""The plaintext stand-in: the same protocol with no encryption, for fast protocol tests and baselines.

Its envelopes say ``scheme: "plaintext"``, which every CKKS cipher refuses, and nothing in the services'
settings can select it: only code that constructs it explicitly (tests, benchmarks) gets it.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from ._envelope import Envelope, EnvelopeKind
from ._errors import InvalidCiphertextError
from ._protocol import (
    NORM_GAIN,
    Outcome,
    Purpose,
    blinding_factor,
    checks_for,
    outcome_from_values,
    prepare_embedding,
)

SCHEME = "plaintext"
PRESET = "plaintext-insecure"


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
    def check(self, ciphertext: bytes) -> None:
        self._open(ciphertext)

    def blind_norm(self, template: bytes) -> bytes:
        vector = self._open(template)
        return self._blinded(Purpose.ENROL, [NORM_GAIN * float(vector @ vector)] * 2, None)

    def compare(self, template: bytes, probe: bytes, threshold: float) -> bytes:
        stored, fresh = self._open(template), self._open(probe)
        norm = NORM_GAIN * float(fresh @ fresh)
        return self._blinded(Purpose.VERIFY, [norm, norm, float(stored @ fresh)], threshold)

    def _blinded(self, purpose: Purpose, values: list[float], threshold: float | None) -> bytes:
        checks = checks_for(purpose, threshold)
        factors = [blinding_factor(bits) for _, _, bits in checks]
        blinded = [sign * r * (v - t) for v, (sign, t, _), r in zip(values, checks, factors, strict=True)]
        header = {"scheme": SCHEME, "key_id": self.key_id, "preset": PRESET, "purpose": purpose.value}
        return Envelope(EnvelopeKind.BLINDED, header, np.asarray(blinded, dtype="<f8").tobytes()).to_bytes()


class PlaintextAuthorityCipher(_PlainBase):
    def _blinded_values(self, blinded: bytes) -> tuple[Purpose, list[float]]:
        envelope = Envelope.from_bytes(blinded, kind=EnvelopeKind.BLINDED)
        envelope.expect(scheme=SCHEME, key_id=self.key_id, preset=PRESET, extra=("purpose",))
        try:
            purpose = Purpose(envelope.header.get("purpose"))
        except ValueError:
            raise InvalidCiphertextError("blinded result has an unknown purpose", field="purpose") from None
        if len(envelope.payload) != 8 * purpose.checks:
            raise InvalidCiphertextError("blinded result has the wrong length", field="size")
        return purpose, np.frombuffer(envelope.payload, dtype="<f8").tolist()

    def decide(self, blinded: bytes) -> tuple[Purpose, Outcome]:
        purpose, values = self._blinded_values(blinded)
        return purpose, outcome_from_values(purpose, values)
