"""CKKS ciphers: the constant-coefficient comparison of DESIGN.md section 3.

A CKKS plaintext m(X) mod X^N + 1 holds N/2 slots, its evaluations at the primitive 2N-th roots (scaled by
Delta). The constant coefficient is (1/N) times the sum of all N evaluations, i.e. (2/N) Re(sum of slots),
so for zero-padded template t and probe p, the constant coefficient of m_t * m_p is (2/N) Delta^2 <t, p>.
One ciphertext multiply, no rotation keys, no rescale.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tenseal.sealapi as sealapi

from ._envelope import Envelope, EnvelopeKind
from ._errors import ConfigurationError, InvalidCiphertextError
from ._keys import KeyBundle, Role, open_context
from ._modarith import Weights, crt, sum_mod, uniform_mod
from ._protocol import (
    NORM_GAIN,
    Outcome,
    Purpose,
    blinding_factor,
    checks_for,
    outcome_from_values,
    prepare_embedding,
)
from ._seal_io import SealFiles, check_ciphertext_layout, ciphertext_polys, ciphertext_size

SCHEME = "ckks"


class _CkksBase:
    def __init__(self, bundle: KeyBundle, role: Role) -> None:
        if bundle.role is not role:
            raise ConfigurationError(f"expected the {role.value} bundle, got the {bundle.role.value} bundle")
        self.context, preset = open_context(bundle)
        self.preset = preset.name
        self.key_id = bundle.key_id
        self._seal = self.context.seal_context().data
        data_level = self._seal.first_context_data()
        self._parms_id: list[int] = list(data_level.parms_id())
        self._primes: list[int] = [m.value() for m in data_level.parms().coeff_modulus()]
        self._n: int = preset.poly_modulus_degree
        self._scale = 2.0**preset.scale_bits
        self._files = SealFiles()
        self._encoder = sealapi.CKKSEncoder(self._seal)

    @property
    def ciphertext_bytes(self) -> int:
        return ciphertext_size(self._n, len(self._primes))

    @property
    def compact_bytes(self) -> int:
        """One blinded value on the wire: per data prime, the sum of c0's NTT values, then c1."""
        return len(self._primes) * 8 * (1 + self._n)

    def _load(self, data: bytes, *, scale: float) -> sealapi.Ciphertext:
        check_ciphertext_layout(
            data,
            parms_id=self._parms_id,
            poly_modulus_degree=self._n,
            rns_primes=len(self._primes),
            scale=scale,
        )
        ciphertext = sealapi.Ciphertext(self._seal)
        try:
            self._files.load(ciphertext, self._seal, data)
        except (RuntimeError, ValueError):
            raise InvalidCiphertextError(
                "ciphertext does not parse under this key's parameters", field="ciphertext"
            ) from None
        return ciphertext


class CkksClientCipher(_CkksBase):
    """Encrypts normalised embeddings under the public key, zero-padded (not TenSEAL's replication)."""

    def __init__(self, bundle: KeyBundle, *, model_id: str, dimension: int) -> None:
        super().__init__(bundle, Role.PUBLIC)
        if dimension > self._n // 2:
            raise ConfigurationError(f"dimension {dimension} does not fit {self._n // 2} slots")
        self.model_id = model_id
        self.dimension = dimension
        self._encryptor = sealapi.Encryptor(self._seal, self.context.public_key().data)
        self._padding = [0.0] * (self._n // 2 - dimension)

    def encrypt(self, embedding: Any) -> bytes:
        vector = prepare_embedding(embedding, self.dimension)
        plain = sealapi.Plaintext()
        self._encoder.encode(vector.tolist() + self._padding, self._scale, plain)
        ciphertext = sealapi.Ciphertext(self._seal)
        self._encryptor.encrypt(plain, ciphertext)
        header = {
            "scheme": SCHEME,
            "key_id": self.key_id,
            "model_id": self.model_id,
            "dimension": self.dimension,
            "preset": self.preset,
        }
        return Envelope(EnvelopeKind.EMBEDDING, header, self._files.ciphertext_bytes(ciphertext)).to_bytes()


class CkksMatcherCipher(_CkksBase):
    """The matcher's side: holds relinearisation keys and the public key, never a secret key."""

    def __init__(self, bundle: KeyBundle, *, model_id: str, dimension: int) -> None:
        super().__init__(bundle, Role.EVALUATION)
        self.model_id = model_id
        self.dimension = dimension
        self._evaluator = sealapi.Evaluator(self._seal)
        self._encryptor = sealapi.Encryptor(self._seal, self.context.public_key().data)
        self._relin_keys = sealapi.RelinKeys()
        self._conjugation_keys = sealapi.GaloisKeys()
        try:
            self._files.load(self._relin_keys, self._seal, bundle.relin_keys)
            self._files.load(self._conjugation_keys, self._seal, bundle.conjugation_keys)
        except (RuntimeError, ValueError):
            raise ConfigurationError("evaluation bundle's relin.bin or conjugation.bin does not parse") from None
        if not self._conjugation_keys.has_key(2 * self._n - 1):
            raise ConfigurationError("evaluation bundle's conjugation.bin holds no conjugation key")
        self._product_scale = self._scale * self._scale
        self._stock: list[tuple[sealapi.Plaintext, sealapi.Ciphertext]] = []

    def _open(self, data: bytes) -> sealapi.Ciphertext:
        envelope = Envelope.from_bytes(data, kind=EnvelopeKind.EMBEDDING)
        envelope.expect(
            scheme=SCHEME,
            key_id=self.key_id,
            model_id=self.model_id,
            dimension=self.dimension,
            preset=self.preset,
        )
        return self._load(envelope.payload, scale=self._scale)

    def check(self, ciphertext: bytes) -> None:
        self._open(ciphertext)

    def blind_norm(self, template: bytes) -> bytes:
        return self._blinded(Purpose.ENROL, self._open(template), None, None)

    def compare(
        self, template: bytes, probe: bytes, threshold: float, *, blinding: Sequence[int] | None = None
    ) -> bytes:
        """Blinded (|p|^2 - (1-eps), (1+eps) - |p|^2, <t,p> - threshold); ``blinding`` is for benchmarks."""
        stored = self._open(template)
        return self._blinded(Purpose.VERIFY, self._open(probe), stored, threshold, blinding)

    def _blinded(
        self,
        purpose: Purpose,
        probe: sealapi.Ciphertext,
        template: sealapi.Ciphertext | None,
        threshold: float | None,
        blinding: Sequence[int] | None = None,
    ) -> bytes:
        checks = checks_for(purpose, threshold)
        factors = list(blinding) if blinding is not None else [blinding_factor(bits) for _, _, bits in checks]
        # |p|^2 as p * conj(p): the constant coefficient is then (2/N) sum |z_k|^2, positive definite.
        # Squaring would give sum Re(z_k^2), which imaginary parts can cancel while the real parts grow.
        gained, conjugate, gain = sealapi.Ciphertext(self._seal), sealapi.Ciphertext(self._seal), sealapi.Plaintext()
        self._encoder.encode(float(NORM_GAIN), probe.parms_id(), 1.0, gain)
        self._evaluator.multiply_plain(probe, gain, gained)
        self._evaluator.complex_conjugate(gained, self._conjugation_keys, conjugate)
        norm = sealapi.Ciphertext(self._seal)
        self._evaluator.multiply(probe, conjugate, norm)
        # Relinearising before blinding is the same as after (both are linear) and serves both norm checks.
        self._evaluator.relinearize_inplace(norm, self._relin_keys)
        products = [norm, norm]
        if template is not None:
            score = sealapi.Ciphertext(self._seal)
            self._evaluator.multiply(template, probe, score)
            self._evaluator.relinearize_inplace(score, self._relin_keys)
            products.append(score)
        parts = [
            self._compact(self._blind(product, sign * r, t))
            for product, (sign, t, _), r in zip(products, checks, factors, strict=True)
        ]
        header = {"scheme": SCHEME, "key_id": self.key_id, "preset": self.preset, "purpose": purpose.value}
        return Envelope(EnvelopeKind.BLINDED, header, b"".join(parts)).to_bytes()

    def _blind(self, product: sealapi.Ciphertext, factor: int, threshold: float) -> sealapi.Ciphertext:
        """factor * (product - threshold) in the constant coefficient, uniform elsewhere, re-randomised."""
        plain_factor, plain_threshold = sealapi.Plaintext(), sealapi.Plaintext()
        self._encoder.encode(float(factor), product.parms_id(), 1.0, plain_factor)  # scale 1: no level used
        result = sealapi.Ciphertext(self._seal)
        self._evaluator.multiply_plain(product, plain_factor, result)
        # A constant encoded in every slot is the constant polynomial: -factor * t * (2/N) * Delta^2.
        self._encoder.encode(-factor * threshold * 2.0 / self._n, result.parms_id(), result.scale, plain_threshold)
        self._evaluator.add_plain_inplace(result, plain_threshold)
        mask, zero = self._randomness()
        mask.scale = zero.scale = result.scale
        self._evaluator.add_plain_inplace(result, mask)
        self._evaluator.add_inplace(result, zero)
        return result

    def _compact(self, ciphertext: sealapi.Ciphertext) -> bytes:
        """What decrypting the constant coefficient needs: per prime, sum(c0) and c1 (half the bytes).

        The constant coefficient of c0 + c1 s is N^-1 (sum(c0) + <c1, s>) in NTT form, so c0's other
        values are never needed: the authority receives strictly less than the ciphertext.
        """
        polys = ciphertext_polys(self._files.ciphertext_bytes(ciphertext), self._n, len(self._primes))
        return b"".join(
            np.uint64(sum_mod(polys[0, i], q)).astype("<u8").tobytes() + polys[1, i].astype("<u8").tobytes()
            for i, q in enumerate(self._primes)
        )

    def replenish(self, count: int = 12, batch: int = 3) -> int:
        """Precompute masks and encryptions of zero (each used once, then dropped) off the request path.

        Each verification takes three pairs, each enrolment two; without a stock they are made on the spot
        (about 1 ms each). Makes at most ``batch`` pairs per call, so a worker topping up its stock between
        requests never holds the next request back for long. Returns how many pairs are in stock.
        """
        for _ in range(min(batch, count - len(self._stock))):
            self._stock.append(self._fresh_randomness())
        return len(self._stock)

    def _randomness(self) -> tuple[sealapi.Plaintext, sealapi.Ciphertext]:
        try:
            return self._stock.pop()
        except IndexError:
            return self._fresh_randomness()

    def _fresh_randomness(self) -> tuple[sealapi.Plaintext, sealapi.Ciphertext]:
        zero = sealapi.Ciphertext(self._seal)
        self._encryptor.encrypt_zero(self._parms_id, zero)
        return self._mask(0, self._product_scale), zero

    def _mask(self, constant: int, scale: float) -> sealapi.Plaintext:
        """Constant coefficient ``constant``, every other coefficient uniform mod q.

        In NTT form the constant coefficient is N^-1 times the sum of the N values, so N - 1 uniform
        values and one that fixes the sum give exactly that distribution.
        """
        parts = []
        for q in self._primes:
            values = uniform_mod(q, self._n).copy()
            values[-1] = np.uint64((self._n * constant - sum_mod(values[:-1], q)) % q)
            parts.append(values)
        return self._files.plaintext_from_ntt(self._seal, self._parms_id, np.concatenate(parts), scale)


class CkksAuthorityCipher(_CkksBase):
    """The authority's side: decrypts only the constant coefficient of blinded results, keeps its sign."""

    def __init__(self, bundle: KeyBundle) -> None:
        super().__init__(bundle, Role.SECRET)
        self._product_scale = self._scale * self._scale
        # The secret key lives at the key level (data primes first, then the special prime), in NTT form. It is
        # read value by value (a few ms, once) so that it never passes through a file, even one in memory.
        secret = self.context.secret_key().data.data()
        key = np.array([secret.data(i) for i in range(self._n * len(self._primes))], dtype=np.uint64)
        self._key = [Weights(part) for part in key.reshape(len(self._primes), self._n)]
        self._n_inverse = [pow(self._n, -1, q) for q in self._primes]
        self._modulus = math.prod(self._primes)

    def blinded_values(self, blinded: bytes) -> tuple[Purpose, list[float]]:
        """sign * r * (v - t) per check. Only benchmarks and tests look at these; decide() keeps the sign."""
        envelope = Envelope.from_bytes(blinded, kind=EnvelopeKind.BLINDED)
        envelope.expect(scheme=SCHEME, key_id=self.key_id, preset=self.preset, extra=("purpose",))
        try:
            purpose = Purpose(envelope.header.get("purpose"))
        except ValueError:
            raise InvalidCiphertextError("blinded result has an unknown purpose", field="purpose") from None
        size = self.compact_bytes
        if len(envelope.payload) != purpose.checks * size:
            raise InvalidCiphertextError(
                f"blinded result must hold {purpose.checks} values of {size} bytes", field="size"
            )
        values = np.frombuffer(envelope.payload, dtype="<u8").reshape(purpose.checks, len(self._primes), 1 + self._n)
        return purpose, [self._constant_term(check) for check in values]

    def decide(self, blinded: bytes) -> tuple[Purpose, Outcome]:
        purpose, values = self.blinded_values(blinded)
        return purpose, outcome_from_values(purpose, values)

    def _constant_term(self, check: np.ndarray) -> float:
        """sign * r * (v - t), from the decryption's constant coefficient alone, computed exactly.

        Decryption is m = c0 + c1 * s in NTT form, and the constant coefficient of m is N^-1 times the sum
        of its N NTT values: N^-1 (sum(c0) + <c1, s>), one exact modular dot product per prime, without
        decrypting (or even forming) any other coefficient.
        """
        residues = []
        for i, q in enumerate(self._primes):
            c0_sum, c1 = int(check[i, 0]), check[i, 1:]
            if c0_sum >= q or int(c1.max()) >= q:
                raise InvalidCiphertextError("blinded result holds values outside the modulus", field="ciphertext")
            residues.append((c0_sum + self._key[i].dot(c1, q)) * self._n_inverse[i] % q)
        return crt(residues, self._primes, self._modulus) * self._n / (2.0 * self._product_scale)


def probe_digest(probe: bytes) -> str:
    return hashlib.sha256(probe).hexdigest()
