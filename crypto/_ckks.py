"""CKKS ciphers: the constant-coefficient comparison of docs/design.md §3.3.

A CKKS plaintext m(X) mod X^N + 1 holds N/2 slots, its evaluations at the primitive 2N-th roots (scaled by
Delta). The constant coefficient is (1/N) times the sum of all N evaluations, i.e. (2/N) Re(sum of slots),
so for zero-padded template t and probe p, the constant coefficient of m_t * m_p is (2/N) Delta^2 <t, p>.
One ciphertext multiply, no rotation keys, no rescale.

The two norm checks share one ciphertext. A polynomial whose slots are all real is fixed by the automorphism
X -> X^-1 (complex conjugation), which negates coefficient N/2, so that coefficient is zero: |p|^2 + conj(|p|^2)
has real slots, and multiplying by the monomial X^(N/2) moves a value from coefficient 0 to coefficient N/2
without touching coefficient 0. One ciphertext then carries r1 (|p|^2 - t1) in coefficient 0 and
-r2 (|p|^2 - t2) in coefficient N/2, re-randomised by one encryption of zero: a verification costs two
encryptions of zero instead of three, an enrolment one instead of two.
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
from ._modarith import Weights, crt, mul_mod_exact, sum_mod, uniform_mod
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


class _HalfMonomial:
    """X^(N/2), which moves a value from coefficient 0 to coefficient N/2, and what reading N/2 needs.

    Its slots alternate i, -i (SEAL's slot k is the root zeta^(3^k)), so encoding them at scale 1 gives the
    monomial exactly; its NTT values are +-I with I^2 = -1 mod q. Coefficient N/2 of m is
    N^-1 <NTT(m), NTT(X^-(N/2))>, and X^-(N/2) = -X^(N/2): ``readout`` holds those weights per prime.
    """

    def __init__(self, encoder: sealapi.CKKSEncoder, parms_id: list[int], n: int, primes: list[int]) -> None:
        self.plain = sealapi.Plaintext()
        encoder.encode([1j, -1j] * (n // 4), parms_id, 1.0, self.plain)
        values = np.array([self.plain.data(i) for i in range(n * len(primes))], dtype=np.uint64)
        self.values = values.reshape(len(primes), n)
        self.readout = [Weights((q - row) % np.uint64(q)) for row, q in zip(self.values, primes, strict=True)]
        # For masks: per prime, I (the value at position 0) and a position where the value is -I.
        self.plus_i = [int(row[0]) for row in self.values]
        self.minus_i_at = [int(np.flatnonzero(row != row[0])[0]) for row in self.values]


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

    def _half_monomial(self) -> _HalfMonomial:
        return _HalfMonomial(self._encoder, self._parms_id, self._n, self._primes)

    @property
    def ciphertext_bytes(self) -> int:
        return ciphertext_size(self._n, len(self._primes))

    def compact_bytes(self, readouts: int = 1) -> int:
        """One blinded ciphertext on the wire: per data prime, ``readouts`` weighted sums of c0, then c1."""
        return len(self._primes) * 8 * (readouts + self._n)

    def blinded_bytes(self, purpose: Purpose) -> int:
        """The blinded payload for ``purpose``: the norm pair, and for a verification the score as well."""
        return self.compact_bytes(2) + (self.compact_bytes(1) if purpose is Purpose.VERIFY else 0)

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
        self._half = self._half_monomial()
        self._inverse_of_two = [pow(2, -1, q) for q in self._primes]
        self._stock: dict[int, list[tuple[sealapi.Plaintext, sealapi.Ciphertext]]] = {1: [], 2: []}

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

    def compare(self, template: bytes, probe: bytes, threshold: float) -> bytes:
        """Blinded (|p|^2 - (1-eps), (1+eps) - |p|^2, <t,p> - threshold)."""
        stored = self._open(template)
        return self._blinded(Purpose.VERIFY, self._open(probe), stored, threshold)

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
        signed = [sign * r for (sign, _, _), r in zip(checks, factors, strict=True)]
        # |p|^2 as p * conj(p): the constant coefficient is then (2/N) sum |z_k|^2, positive definite.
        # Squaring would give sum Re(z_k^2), which imaginary parts can cancel while the real parts grow.
        gained, conjugate, gain = sealapi.Ciphertext(self._seal), sealapi.Ciphertext(self._seal), sealapi.Plaintext()
        self._encoder.encode(float(NORM_GAIN), probe.parms_id(), 1.0, gain)
        self._evaluator.multiply_plain(probe, gain, gained)
        self._evaluator.complex_conjugate(gained, self._conjugation_keys, conjugate)
        norm = sealapi.Ciphertext(self._seal)
        self._evaluator.multiply(probe, conjugate, norm)
        self._evaluator.relinearize_inplace(norm, self._relin_keys)
        # norm + conj(norm) = 2 c |p|^2 with every slot real: coefficient N/2 is zero (up to the conjugation's
        # key-switching noise, ~1e-9 here) and free for the second check. The thresholds double with it.
        mirrored = sealapi.Ciphertext(self._seal)
        self._evaluator.complex_conjugate(norm, self._conjugation_keys, mirrored)
        self._evaluator.add_inplace(norm, mirrored)
        pair = self._blind(norm, signed[:2], [2.0 * checks[0][1], 2.0 * checks[1][1]])
        parts = [self._compact(pair, readouts=2)]
        if template is not None:
            score = sealapi.Ciphertext(self._seal)
            self._evaluator.multiply(template, probe, score)
            self._evaluator.relinearize_inplace(score, self._relin_keys)
            parts.append(self._compact(self._blind(score, signed[2:], [checks[2][1]]), readouts=1))
        header = {"scheme": SCHEME, "key_id": self.key_id, "preset": self.preset, "purpose": purpose.value}
        return Envelope(EnvelopeKind.BLINDED, header, b"".join(parts)).to_bytes()

    def _blind(
        self, product: sealapi.Ciphertext, factors: Sequence[int], thresholds: Sequence[float]
    ) -> sealapi.Ciphertext:
        """sum_j factors[j] (product - thresholds[j]) X^(j N/2): coefficient 0, and N/2 for a second check;
        uniform in every other coefficient, re-randomised."""
        result: sealapi.Ciphertext | None = None
        for j, (factor, threshold) in enumerate(zip(factors, thresholds, strict=True)):
            plain_factor, plain_threshold = sealapi.Plaintext(), sealapi.Plaintext()
            self._encoder.encode(float(factor), product.parms_id(), 1.0, plain_factor)  # scale 1: no level used
            part = sealapi.Ciphertext(self._seal)
            self._evaluator.multiply_plain(product, plain_factor, part)
            # A constant encoded in every slot is the constant polynomial: -factor * t * (2/N) * Delta^2.
            self._encoder.encode(-factor * threshold * 2.0 / self._n, part.parms_id(), part.scale, plain_threshold)
            self._evaluator.add_plain_inplace(part, plain_threshold)
            if j == 1:  # to coefficient N/2
                self._evaluator.multiply_plain_inplace(part, self._half.plain)
            if result is None:
                result = part
            else:
                self._evaluator.add_inplace(result, part)
        assert result is not None
        mask, zero = self._randomness(len(factors))
        mask.scale = zero.scale = result.scale
        self._evaluator.add_plain_inplace(result, mask)
        self._evaluator.add_inplace(result, zero)
        return result

    def _compact(self, ciphertext: sealapi.Ciphertext, *, readouts: int) -> bytes:
        """What decrypting coefficient 0 (and N/2) needs: per prime, sum(c0) (and <c0, w>), then c1.

        Coefficient k of c0 + c1 s is N^-1 <c0 + c1 s, NTT(X^-k)> in NTT form (for k = 0 a plain sum), so c0's
        values themselves are never needed: the authority receives strictly less than the ciphertext.
        """
        polys = ciphertext_polys(self._files.ciphertext_bytes(ciphertext), self._n, len(self._primes))
        out = []
        for i, q in enumerate(self._primes):
            sums = [sum_mod(polys[0, i], q)]
            if readouts == 2:
                sums.append(self._half.readout[i].dot(polys[0, i], q))
            out.append(np.array(sums, dtype="<u8").tobytes() + polys[1, i].astype("<u8").tobytes())
        return b"".join(out)

    def replenish(self, count: int = 4, batch: int = 2) -> int:
        """Precompute masks and encryptions of zero (each used once, then dropped) off the request path.

        Keeps up to ``count`` of each kind: a verification takes one for the norm pair and one for the score,
        an enrolment one for the norm pair; without a stock they are made on the spot (about 1 ms each).
        Makes at most ``batch`` per call, so a worker topping up its stock between requests never holds the
        next request back for long. Returns how many are in stock.
        """
        for _ in range(batch):
            short = [readouts for readouts in (2, 1) if len(self._stock[readouts]) < count]
            if not short:
                break
            readouts = min(short, key=lambda kind: len(self._stock[kind]))
            self._stock[readouts].append(self._fresh_randomness(readouts))
        return sum(len(stock) for stock in self._stock.values())

    def _randomness(self, readouts: int) -> tuple[sealapi.Plaintext, sealapi.Ciphertext]:
        try:
            return self._stock[readouts].pop()
        except IndexError:
            return self._fresh_randomness(readouts)

    def _fresh_randomness(self, readouts: int) -> tuple[sealapi.Plaintext, sealapi.Ciphertext]:
        zero = sealapi.Ciphertext(self._seal)
        self._encryptor.encrypt_zero(self._parms_id, zero)
        return self._mask(self._product_scale, readouts=readouts), zero

    def _mask(self, scale: float, *, readouts: int = 1, constants: Sequence[int] = (0, 0)) -> sealapi.Plaintext:
        """Coefficient 0 (and N/2 when ``readouts`` is 2) fixed to ``constants``, every other uniform mod q.

        Coefficient k is N^-1 <values, NTT(X^-k)>: N - readouts uniform values, and the last ones solving
        those equations, give exactly that distribution. For two readouts, two positions where X^(N/2) is
        +I and -I: x_a + x_b = N c0 - S and -I (x_a - x_b) = N c1 - T, so x_a - x_b = I (N c1 - T).
        """
        parts = []
        for i, q in enumerate(self._primes):
            values = uniform_mod(q, self._n).copy()
            target0 = self._n * int(constants[0]) % q
            if readouts == 1:
                values[-1] = np.uint64((target0 - sum_mod(values[:-1], q)) % q)
            else:
                b = self._half.minus_i_at[i]
                values[0] = values[b] = 0
                rest_sum = sum_mod(values, q)
                rest_weighted = self._half.readout[i].dot(values, q)
                target1 = self._n * int(constants[1]) % q
                total = (target0 - rest_sum) % q
                difference = self._half.plus_i[i] * (target1 - rest_weighted) % q
                values[0] = np.uint64((total + difference) * self._inverse_of_two[i] % q)
                values[b] = np.uint64((total - difference) * self._inverse_of_two[i] % q)
            parts.append(values)
        return self._files.plaintext_from_ntt(self._seal, self._parms_id, np.concatenate(parts), scale)


class CkksAuthorityCipher(_CkksBase):
    """The authority's side: decrypts only the read-out coefficients of blinded results, keeps their signs."""

    def __init__(self, bundle: KeyBundle) -> None:
        super().__init__(bundle, Role.SECRET)
        self._product_scale = self._scale * self._scale
        # The secret key lives at the key level (data primes first, then the special prime), in NTT form. It is
        # read value by value (a few ms, once) so that it never passes through a file, even one in memory.
        secret = self.context.secret_key().data.data()
        key = np.array([secret.data(i) for i in range(self._n * len(self._primes))], dtype=np.uint64)
        rows = key.reshape(len(self._primes), self._n)
        # Per prime: s, for coefficient 0, and s * NTT(X^-(N/2)), for coefficient N/2.
        self._key = [
            (Weights(row), Weights(mul_mod_exact(row, half.values, q)))
            for row, half, q in zip(rows, self._half_monomial().readout, self._primes, strict=True)
        ]
        self._n_inverse = [pow(self._n, -1, q) for q in self._primes]
        self._modulus = math.prod(self._primes)

    def _blinded_values(self, blinded: bytes) -> tuple[Purpose, list[float]]:
        """sign * r * (v - t) per check; decide() keeps the signs (``veilface.crypto.testing`` reads these)."""
        envelope = Envelope.from_bytes(blinded, kind=EnvelopeKind.BLINDED)
        envelope.expect(scheme=SCHEME, key_id=self.key_id, preset=self.preset, extra=("purpose",))
        try:
            purpose = Purpose(envelope.header.get("purpose"))
        except ValueError:
            raise InvalidCiphertextError("blinded result has an unknown purpose", field="purpose") from None
        size = self.blinded_bytes(purpose)
        if len(envelope.payload) != size:
            raise InvalidCiphertextError(
                f"blinded result for {purpose.value} must be {size} bytes, got {len(envelope.payload)}", field="size"
            )
        primes = len(self._primes)
        words = np.frombuffer(envelope.payload, dtype="<u8")
        pair_words = primes * (2 + self._n)
        # The norm pair was blinded as norm + conj(norm), twice the norm: halve to undo it.
        values = [value / 2.0 for value in self._read(words[:pair_words].reshape(primes, 2 + self._n), 2)]
        if purpose is Purpose.VERIFY:
            values += self._read(words[pair_words:].reshape(primes, 1 + self._n), 1)
        return purpose, values

    def decide(self, blinded: bytes) -> tuple[Purpose, Outcome]:
        purpose, values = self._blinded_values(blinded)
        return purpose, outcome_from_values(purpose, values)

    def _read(self, ciphertext: np.ndarray, readouts: int) -> list[float]:
        """sign * r * (v - t) from coefficient 0 (and N/2) of the decryption, computed exactly.

        Decryption is m = c0 + c1 * s in NTT form; coefficient 0 of m is N^-1 times the sum of its N values,
        N^-1 (sum(c0) + <c1, s>), and coefficient N/2 is N^-1 (<c0, w> + <c1, s * w>) with w = NTT(X^-(N/2)):
        one exact modular dot product per prime and coefficient, without decrypting (or even forming) any
        other coefficient.
        """
        residues: list[list[int]] = [[] for _ in range(readouts)]
        for i, q in enumerate(self._primes):
            sums, c1 = ciphertext[i, :readouts], ciphertext[i, readouts:]
            if int(sums.max()) >= q or int(c1.max()) >= q:
                raise InvalidCiphertextError("blinded result holds values outside the modulus", field="ciphertext")
            for k in range(readouts):
                residues[k].append((int(sums[k]) + self._key[i][k].dot(c1, q)) * self._n_inverse[i] % q)
        return [crt(r, self._primes, self._modulus) * self._n / (2.0 * self._product_scale) for r in residues]


def probe_digest(probe: bytes) -> str:
    return hashlib.sha256(probe).hexdigest()
