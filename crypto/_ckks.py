"""CKKS ciphers: the constant-coefficient comparison of docs/design.md §3, and the checks that keep a crafted
plaintext from forging a match.

A CKKS plaintext m(X) mod X^N + 1 holds N/2 slots, its evaluations at the primitive 2N-th roots (scaled by
Delta). The constant coefficient is (1/N) times the sum of all N evaluations, i.e. (2/N) Re(sum of slots),
so for template t and probe p the constant coefficient of m_t * m_p is (2/N) Delta^2 Re sum_k t_k p_k: one
ciphertext multiply, no rotation keys, no rescale. Coefficient N/2 is (2/N) sum_k s_k Im(m_k), s_k = +-1.

The client replicates its d-dimensional embedding over all N/2 slots, c = (N/2)/d copies each scaled by
1/sqrt(c): the score of two honest vectors is still <x, y>, and no slot is left empty.

What the authority checks, per request (a verification; an enrolment drops the score):

- |p|^2 = sum_k |p_k|^2, real and imaginary parts of every slot, computed exactly (see ``_norm``), within
  1 +- eps. By Cauchy-Schwarz |Re sum_k t_k p_k| <= |t| |p|, so among probes that pass it without a wrap
  the best score any template can get is the honest direction's: energy in imaginary parts or spread over
  the copies counts in the norm and cannot add to the score.
- K projections of p onto fresh secret Gaussian directions, each within PROJECTION_BOUND (an honest unit
  probe always is); K = 4 at the default preset, 6 for an enrolment. Values live mod q, so a probe with
  |p|^2 = 1 + k M (M the norm's period, 8192 at the default preset) passes the norm check; it is then
  ~sqrt(M) long and its projections land outside the bound (or wrap to a random, implausible value) except
  with probability ``wrap_pass_rate`` each.
- the score's sign, r (s - tau) blinded by a fresh log-uniform r.

Ciphertexts to the authority are compact (``_compact``): per ciphertext its c1 and the weighted sums of c0
that reading coefficient 0 (and N/2) needs, so the authority can decrypt nothing else. A ciphertext whose c1
depends on the plaintexts (a product with a template or of the probe with itself) is re-randomised by a
fresh encryption of zero first. A projection ciphertext's c1 is the client's fresh c1 times a secret
plaintext, independent of the plaintexts; further ones are conjugated, so that no two c1 share a factor.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenseal.sealapi as sealapi

from ._envelope import Envelope, EnvelopeKind
from ._errors import ConfigurationError, InvalidCiphertextError
from ._keys import KeyBundle, Role, open_context
from ._modarith import Weights, crt, mul_mod_exact, sum_mod
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
from ._seal_io import SealFiles, check_ciphertext_layout, ciphertext_polys, ciphertext_size

SCHEME = "ckks"
ENCODING = "replicated"  # in every embedding's header: zero-padded ones (made before replication) are refused


def replicate(vector: np.ndarray, slots: int) -> np.ndarray:
    """The slot vector of an embedding: ``slots // d`` copies, each scaled by 1/sqrt(copies), then zeros."""
    copies = slots // len(vector)
    out = np.zeros(slots)
    out[: copies * len(vector)] = np.tile(vector, copies) / math.sqrt(copies)
    return out


def fold(slots: np.ndarray, dimension: int) -> np.ndarray:
    """The adjoint of ``replicate``: <replicate(x), v> = <x, fold(v)> for real v."""
    copies = len(slots) // dimension
    return slots[: copies * dimension].reshape(copies, dimension).sum(axis=0) / math.sqrt(copies)


class _HalfMonomial:
    """X^(N/2), which moves a value from coefficient 0 to coefficient N/2, and what reading N/2 needs.

    Its slots alternate i, -i (SEAL's slot k is the root zeta^(3^k)), so encoding them at scale 1 gives the
    monomial exactly; its NTT values are +-I with I^2 = -1 mod q. Coefficient N/2 of m is
    N^-1 <NTT(m), NTT(X^-(N/2))>, and X^-(N/2) = -X^(N/2): ``readout`` holds those weights per prime. In slots,
    coefficient N/2 is (2/N) sum_k signs_k Im(m_k).
    """

    def __init__(self, encoder: sealapi.CKKSEncoder, parms_id: list[int], n: int, primes: list[int]) -> None:
        self.plain = sealapi.Plaintext()
        encoder.encode([1j, -1j] * (n // 4), parms_id, 1.0, self.plain)
        values = np.array([self.plain.data(i) for i in range(n * len(primes))], dtype=np.uint64)
        self.values = values.reshape(len(primes), n)
        self.readout = [Weights((q - row) % np.uint64(q)) for row, q in zip(self.values, primes, strict=True)]
        self.signs = np.tile([1.0, -1.0], n // 4)


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
        # The norm's period: the data modulus in units of the constant coefficient of a product, Delta^2 2/N.
        self.period = math.prod(self._primes) * self._n / (2.0 * self._scale * self._scale)
        self.projections = projection_counts(self.period)

    def _hold_embeddings(self, model_id: str, dimension: int) -> None:
        """Take ``model_id``'s ``dimension``-d embeddings, which must fit the slots (they are replicated over them)."""
        if dimension > self._n // 2:
            raise ConfigurationError(f"dimension {dimension} does not fit {self._n // 2} slots")
        self.model_id = model_id
        self.dimension = dimension

    def _half_monomial(self) -> _HalfMonomial:
        return _HalfMonomial(self._encoder, self._parms_id, self._n, self._primes)

    @property
    def ciphertext_bytes(self) -> int:
        return ciphertext_size(self._n, len(self._primes))

    def compact_bytes(self, readouts: int = 1) -> int:
        """One blinded ciphertext on the wire: per data prime, ``readouts`` weighted sums of c0, then c1."""
        return len(self._primes) * 8 * (readouts + self._n)

    def _layout(self, purpose: Purpose) -> list[int]:
        """Readouts per compact ciphertext: the checks' (the score and the norm, or the norm alone), then two
        projections per ciphertext."""
        return [2 if purpose is Purpose.VERIFY else 1] + [2] * (self.projections[purpose] // 2)

    def blinded_bytes(self, purpose: Purpose) -> int:
        """The payload to the authority for ``purpose``."""
        return sum(self.compact_bytes(readouts) for readouts in self._layout(purpose))

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


def _embedding_header(cipher: CkksClientCipher | CkksMatcherCipher) -> dict[str, Any]:
    return {
        "scheme": SCHEME,
        "encoding": ENCODING,
        "key_id": cipher.key_id,
        "model_id": cipher.model_id,
        "dimension": cipher.dimension,
        "preset": cipher.preset,
    }


class CkksClientCipher(_CkksBase):
    """Encrypts normalised embeddings under the public key, replicated over every slot."""

    def __init__(self, bundle: KeyBundle, *, model_id: str, dimension: int) -> None:
        super().__init__(bundle, Role.PUBLIC)
        self._hold_embeddings(model_id, dimension)
        self._encryptor = sealapi.Encryptor(self._seal, self.context.public_key().data)

    def encrypt(self, embedding: Any) -> bytes:
        vector = prepare_embedding(embedding, self.dimension)
        plain = sealapi.Plaintext()
        self._encoder.encode(replicate(vector, self._n // 2).tolist(), self._scale, plain)
        ciphertext = sealapi.Ciphertext(self._seal)
        self._encryptor.encrypt(plain, ciphertext)
        payload = self._files.ciphertext_bytes(ciphertext)
        return Envelope(EnvelopeKind.EMBEDDING, _embedding_header(self), payload).to_bytes()


@dataclass(frozen=True)
class _Opened:
    """A checked embedding ciphertext: SEAL's object, and its (c0, c1) NTT values, shape (2, primes, N)."""

    ciphertext: sealapi.Ciphertext
    polys: np.ndarray


class CkksMatcherCipher(_CkksBase):
    """The matcher's side: holds relinearisation and conjugation keys and the public key, never a secret key."""

    def __init__(self, bundle: KeyBundle, *, model_id: str, dimension: int) -> None:
        super().__init__(bundle, Role.EVALUATION)
        self._hold_embeddings(model_id, dimension)
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
        self._half = self._half_monomial()
        # (0, 1): decrypts to s, so multiplying a ciphertext by it multiplies what that decrypts to by s.
        primes = len(self._primes)
        key = np.stack([np.zeros((primes, self._n), np.uint64), np.ones((primes, self._n), np.uint64)])
        self._secret_key_factor = self._files.ciphertext_from_ntt(self._seal, self._parms_id, key, 1.0)
        # Per-request randomness, made ahead of time by ``replenish`` and each used once.
        self._zeros: list[sealapi.Ciphertext] = []
        self._planes: list[sealapi.Plaintext] = []

    def _open(self, data: bytes) -> _Opened:
        envelope = Envelope.from_bytes(data, kind=EnvelopeKind.EMBEDDING)
        envelope.expect(**_embedding_header(self))
        ciphertext = self._load(envelope.payload, scale=self._scale)
        return _Opened(ciphertext, ciphertext_polys(envelope.payload, self._n, len(self._primes)))

    def check(self, ciphertext: bytes) -> None:
        self._open(ciphertext)

    def blind_norm(self, template: bytes) -> bytes:
        return self._blinded(Purpose.ENROL, self._open(template), None, None)

    def compare(self, template: bytes, probe: bytes, threshold: float) -> bytes:
        """|p|^2 - 1, the probe's projections, and r (<t, p> - threshold), for the authority."""
        stored = self._open(template)
        return self._blinded(Purpose.VERIFY, self._open(probe), stored, threshold)

    def _blinded(
        self,
        purpose: Purpose,
        probe: _Opened,
        template: _Opened | None,
        threshold: float | None,
        factors: Sequence[int] | None = None,
    ) -> bytes:
        """What the authority reads, with the score's blinding factor drawn fresh unless ``factors`` gives it.

        One ciphertext holds the checks: for a verification r (Re <t, p> - threshold) doubled at coefficient 0
        (the product plus its conjugate, whose slots are real, so that coefficient N/2 is free) and |p|^2 - 1 at
        N/2; for an enrolment |p|^2 - 1 at 0. It alone is re-randomised: its c1 depends on the plaintexts.
        """
        checks = checks_for(purpose, threshold)
        if factors is None:
            factors = [blinding_factor(limit) for _, _, limit in checks]
        if len(factors) != len(checks):
            raise ValueError(f"expected {len(checks)} blinding factors, got {len(factors)}")
        try:
            return self._checked(purpose, probe, template, checks, factors)
        except RuntimeError as error:
            # SEAL refuses to produce a ciphertext with c1 = 0, which only a crafted input can lead to.
            if "transparent" not in str(error):
                raise
            raise InvalidCiphertextError("ciphertext is degenerate (transparent)", field="ciphertext") from None

    def _checked(
        self,
        purpose: Purpose,
        probe: _Opened,
        template: _Opened | None,
        checks: Sequence[tuple[int, float, int]],
        factors: Sequence[int],
    ) -> bytes:
        norm = self._shifted(self._norm(probe), 1.0)
        if template is None:
            held = norm
        else:
            (sign, cut, _), factor = checks[0], factors[0]
            score = sealapi.Ciphertext(self._seal)
            self._evaluator.multiply(template.ciphertext, probe.ciphertext, score)
            self._evaluator.relinearize_inplace(score, self._relin_keys)
            held = sealapi.Ciphertext(self._seal)
            self._evaluator.complex_conjugate(score, self._conjugation_keys, held)
            self._evaluator.add_inplace(held, score)
            held = self._shifted(held, 2.0 * cut, factor=sign * factor)
            self._evaluator.multiply_plain_inplace(norm, self._half.plain)  # to coefficient N/2
            self._evaluator.add_inplace(held, norm)
        outputs = [self._rerandomised(held)]
        for index in range(self.projections[purpose] // 2):
            projected = sealapi.Ciphertext(self._seal)
            self._evaluator.multiply_plain(probe.ciphertext, self._plane(), projected)
            if index:
                # c1 of the first is the probe's c1 a1 times a secret G; a second a1 G' would hand the authority
                # G'/G. Conjugated (key-switched), c1 is round(conj(a1 G') k / P) for the Galois key's k instead,
                # which hides a1 G' as a rounding-LWE sample, and coefficient 0 (N/2) is unchanged (negated).
                conjugated = sealapi.Ciphertext(self._seal)
                self._evaluator.complex_conjugate(projected, self._conjugation_keys, conjugated)
                projected = conjugated
            outputs.append(projected)
        header = {"scheme": SCHEME, "key_id": self.key_id, "preset": self.preset, "purpose": purpose.value}
        payload = self._compact(outputs, self._layout(purpose))
        return Envelope(EnvelopeKind.BLINDED, header, payload).to_bytes()

    def _norm(self, probe: _Opened) -> sealapi.Ciphertext:
        """p conj(p), exactly: slot k holds |p_k|^2 (coefficient 0: sum_k |p_k|^2), every slot real.

        Conjugating the probe itself (``complex_conjugate``) would cost key-switching noise of ~2% of |p|^2 at
        the default preset, relative to Delta; the probe's own noise is ~5e-6. So the key switches are done on
        products, at Delta^2: with p = (a0, a1) under s, conjugation maps it to y = (b0, b1) under s' = s(X^-1)
        without any key switch (in NTT form, reversing each prime's values). Then
        Dec(p) Dec'(y) = a0 Y + s a1 Y, Y = b0 + b1 s', and a_i Y is what conj(p (x) b_i), key-switched from
        s' to s, decrypts to (the automorphism is an involution). Multiplying the second by (0, 1), an
        encryption-shaped s, and adding gives Dec(p) conj(Dec(p)) up to ~1e-7.
        """
        mirrored = probe.polys[:, :, ::-1]
        parts = []
        for k in range(2):
            plain = self._files.plaintext_from_ntt(self._seal, self._parms_id, mirrored[k].reshape(-1), self._scale)
            product, switched = sealapi.Ciphertext(self._seal), sealapi.Ciphertext(self._seal)
            self._evaluator.multiply_plain(probe.ciphertext, plain, product)
            self._evaluator.complex_conjugate(product, self._conjugation_keys, switched)
            parts.append(switched)
        norm = sealapi.Ciphertext(self._seal)
        self._evaluator.multiply(parts[1], self._secret_key_factor, norm)
        self._evaluator.add_inplace(norm, parts[0])
        self._evaluator.relinearize_inplace(norm, self._relin_keys)
        return norm

    def _shifted(self, product: sealapi.Ciphertext, value: float, *, factor: int = 1) -> sealapi.Ciphertext:
        """factor (product - value), in place: value is in units of the constant coefficient, Delta^2 2/N."""
        if factor != 1:
            plain_factor = sealapi.Plaintext()
            self._encoder.encode(float(factor), product.parms_id(), 1.0, plain_factor)  # scale 1: no level used
            self._evaluator.multiply_plain_inplace(product, plain_factor)
        # A constant encoded in every slot is the constant polynomial.
        plain_value = sealapi.Plaintext()
        self._encoder.encode(-factor * value * 2.0 / self._n, product.parms_id(), product.scale, plain_value)
        self._evaluator.add_plain_inplace(product, plain_value)
        return product

    def _rerandomised(self, ciphertext: sealapi.Ciphertext) -> sealapi.Ciphertext:
        """``ciphertext`` plus a fresh encryption of zero: its c1 is then independent of how it was computed."""
        zero = self._zeros.pop() if self._zeros else self._fresh_zero()
        zero.scale = ciphertext.scale
        self._evaluator.add_inplace(zero, ciphertext)
        return zero

    def _compact(self, ciphertexts: Sequence[sealapi.Ciphertext], layout: Sequence[int]) -> bytes:
        """What decrypting coefficient 0 (and N/2) of each ciphertext needs: per prime, sum(c0) (and <c0, w>), then c1.

        Coefficient k of c0 + c1 s is N^-1 <c0 + c1 s, NTT(X^-k)> in NTT form (for k = 0 a plain sum), so c0's
        values themselves are never needed: the authority receives strictly less than the ciphertexts, and no
        mask over the other coefficients could change what it receives.
        """
        out = []
        for ciphertext, readouts in zip(ciphertexts, layout, strict=True):
            c0, c1 = ciphertext_polys(self._files.ciphertext_bytes(ciphertext), self._n, len(self._primes))
            for i, q in enumerate(self._primes):
                sums = [sum_mod(c0[i], q)]
                if readouts == 2:
                    sums.append(self._half.readout[i].dot(c0[i], q))
                out.append(np.array(sums, dtype="<u8").tobytes() + c1[i].astype("<u8").tobytes())
        return b"".join(out)

    def _plane(self) -> sealapi.Plaintext:
        return self._planes.pop() if self._planes else self._fresh_plane()

    def _fresh_plane(self) -> sealapi.Plaintext:
        """Two projections in one plaintext G with independent Gaussian real and imaginary parts per slot.

        Coefficient 0 of p G is (2/N) Delta^2 sum_k Re(p_k G_k) and coefficient N/2 is (2/N) Delta^2
        sum_k signs_k Im(p_k G_k): two projections of (Re p, Im p), independent for any p. On an honest
        p = replicate(x) they are <x, fold(Re G)> and <x, fold(signs Im G)>; G is scaled so that the longer of
        those two is 1, which keeps an honest probe within PROJECTION_BOUND.
        """
        slots = self._n // 2
        real, imaginary = secret_gaussians(2 * slots).reshape(2, slots)
        longest = max(
            float(np.linalg.norm(fold(real, self.dimension))),
            float(np.linalg.norm(fold(self._half.signs * imaginary, self.dimension))),
        )
        plane = sealapi.Plaintext()
        self._encoder.encode(((real + 1j * imaginary) / longest).tolist(), self._parms_id, self._scale, plane)
        return plane

    def _fresh_zero(self) -> sealapi.Ciphertext:
        zero = sealapi.Ciphertext(self._seal)
        self._encryptor.encrypt_zero(self._parms_id, zero)
        return zero

    def replenish(self, count: int = 4, batch: int | None = None) -> int:
        """Make encryptions of zero and projection plaintexts (each used once, then dropped) off the request path.

        A verification takes one encryption of zero and a plaintext per two projections (an enrolment, which
        has more projections, more plaintexts); without a stock they are made on the spot (about 1 ms and
        0.3 ms each). Keeps up to ``count`` verifications' worth; makes at most ``batch`` per call (by default
        one verification's worth), so a worker topping up its stock between requests never holds the next
        request back for long. Returns how many verifications' worth are in stock.
        """
        planes = self.projections[Purpose.VERIFY] // 2
        limit = 1 + planes if batch is None else batch
        for _ in range(limit):
            if len(self._zeros) * planes < len(self._planes) and len(self._zeros) < count:
                self._zeros.append(self._fresh_zero())
            elif len(self._planes) < count * planes:
                self._planes.append(self._fresh_plane())
            elif len(self._zeros) < count:
                self._zeros.append(self._fresh_zero())
            else:
                break
        return min(len(self._zeros), len(self._planes) // planes)


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

    def _values(self, blinded: bytes) -> tuple[Purpose, list[float]]:
        """What ``decide`` reads: |p|^2 - 1, the projections, then (verification) r (score - threshold)."""
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
        read: list[float] = []
        offset = 0
        for readouts in self._layout(purpose):
            length = primes * (readouts + self._n)
            read += self._read(words[offset : offset + length].reshape(primes, readouts + self._n), readouts)
            offset += length
        if purpose is Purpose.ENROL:
            return purpose, read
        # The score was read doubled (the product plus its conjugate).
        return purpose, [read[1], *read[2:], read[0] / 2.0]

    def decide(self, blinded: bytes) -> tuple[Purpose, Outcome]:
        purpose, values = self._values(blinded)
        return purpose, outcome_from_values(purpose, values, self.projections[purpose])

    def _read(self, ciphertext: np.ndarray, readouts: int) -> list[float]:
        """Coefficient 0 (and N/2) of the decryption, exactly, in units of Delta^2 2/N.

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
