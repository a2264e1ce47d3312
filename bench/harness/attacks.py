"""A modified client (issue 15): crafted CKKS slot vectors under a deployment's public bundle alone.

An attacker owns its plaintext: it can encode any complex slot vector with SEAL's CKKS encoder and encrypt it
under the public key, in a valid envelope. ``Attacker`` does that, knowing only what the public bundle says
(the encoder, the data modulus, the replicated encoding of honest clients). ``PROBE_ATTACKS`` and
``WOLF_ATTACKS`` are the crafted probes and templates of the issue's table, each a function of an honest unit
vector; ``Attacker.rerandomised`` re-randomises a captured ciphertext (adds a fresh encryption of zero: same
face, new bytes). ``veilface bench crafted`` sends them to real services; the crypto tests, to the ciphers.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Callable

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi
import zstandard

import veilface.crypto as vc

# SEAL's serialisation header (SEAL's Serialization::SEALHeader): magic, header size, version, compression,
# reserved, total size. The wire form is uncompressed; SEAL's Python save compresses with zstd.
_HEADER_SIZE = 16
_COMPRESSION_AT = 5
_COMPR_NONE, _COMPR_ZSTD = 0, 2


class Attacker:
    """A modified client: encrypts any slot vector under the public key, with a valid envelope."""

    def __init__(self, public: vc.KeyBundle, model_id: str, dimension: int) -> None:
        context = ts.context_from(public.context)
        self._seal = context.seal_context().data
        parms = self._seal.first_context_data().parms()
        self.n: int = parms.poly_modulus_degree()
        self.scale = 2.0 ** vc.get_preset(public.preset).scale_bits
        self._encoder = sealapi.CKKSEncoder(self._seal)
        self._encryptor = sealapi.Encryptor(self._seal, context.public_key().data)
        self._evaluator = sealapi.Evaluator(self._seal)
        self._dir = tempfile.mkdtemp(prefix="veilface-attacker-")  # private (0700): SEAL saves through files
        atexit.register(shutil.rmtree, self._dir, True)
        self._count = 0
        self.dimension = dimension
        self.copies = self.n // 2 // dimension
        # What wraps: the data modulus in units of a product's constant coefficient, Delta^2 2/N. Public.
        self.period = math.prod(m.value() for m in parms.coeff_modulus()) * self.n / (2 * self.scale**2)
        self.header = {
            "scheme": "ckks",
            "encoding": "replicated",
            "key_id": public.key_id,
            "model_id": model_id,
            "dimension": dimension,
            "preset": public.preset,
        }

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def encrypt(self, slots: np.ndarray) -> bytes:
        plain, ciphertext = sealapi.Plaintext(), sealapi.Ciphertext(self._seal)
        self._encoder.encode(np.asarray(slots, dtype=complex).tolist(), self.scale, plain)
        self._encryptor.encrypt(plain, ciphertext)
        return self._envelope(ciphertext)

    def rerandomised(self, probe: bytes) -> bytes:
        """``probe`` plus a fresh public-key encryption of zero: the same plaintext in new bytes."""
        envelope = vc.Envelope.from_bytes(probe, kind=vc.EnvelopeKind.EMBEDDING)
        ciphertext, zero = sealapi.Ciphertext(self._seal), sealapi.Ciphertext(self._seal)
        path = self._path()
        try:
            with open(path, "wb") as stream:
                stream.write(envelope.payload)
            ciphertext.load(self._seal, path)
        finally:
            os.unlink(path)
        self._encryptor.encrypt_zero(ciphertext.parms_id(), zero)
        zero.scale = ciphertext.scale
        self._evaluator.add_inplace(ciphertext, zero)
        return vc.Envelope(envelope.kind, envelope.header, self._serialised(ciphertext)).to_bytes()

    def replicated(self, x: np.ndarray) -> np.ndarray:
        """The honest client's slots for x (its encoding is public)."""
        return np.tile(x, self.copies) / math.sqrt(self.copies)

    def outside(self, energy: float, rng: np.random.Generator) -> np.ndarray:
        """Real slots carrying ``energy`` where no replicated vector lives: the copies disagree (and sum to 0)."""
        v = rng.normal(size=self.n // 2)
        per_copy = v.reshape(self.copies, self.dimension)
        v = (per_copy - per_copy.mean(axis=0)).reshape(-1)
        return v * math.sqrt(energy) / np.linalg.norm(v)

    def anywhere(self, energy: float, rng: np.random.Generator) -> np.ndarray:
        v = rng.normal(size=self.n // 2)
        return v * math.sqrt(energy) / np.linalg.norm(v)

    def _path(self) -> str:
        self._count += 1
        return os.path.join(self._dir, f"{self._count}.seal")

    def _serialised(self, ciphertext: sealapi.Ciphertext) -> bytes:
        """SEAL's bytes for ``ciphertext``, uncompressed as the wire form is."""
        path = self._path()
        try:
            ciphertext.save(path)
            with open(path, "rb") as stream:
                saved = stream.read()
        finally:
            os.unlink(path)
        if saved[_COMPRESSION_AT] == _COMPR_NONE:
            return saved
        if saved[_COMPRESSION_AT] != _COMPR_ZSTD:
            raise vc.InvalidCiphertextError("unsupported SEAL compression mode")
        body = zstandard.ZstdDecompressor().decompressobj().decompress(saved[_HEADER_SIZE:])
        header = saved[:_COMPRESSION_AT] + bytes([_COMPR_NONE]) + saved[_COMPRESSION_AT + 1 : 8]
        return header + struct.pack("<Q", _HEADER_SIZE + len(body)) + body

    def _envelope(self, ciphertext: sealapi.Ciphertext) -> bytes:
        return vc.Envelope(vc.EnvelopeKind.EMBEDDING, self.header, self._serialised(ciphertext)).to_bytes()


def unit(rng: np.random.Generator, dimension: int) -> np.ndarray:
    v = rng.normal(size=dimension)
    return v / np.linalg.norm(v)


def with_cosine(x: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose cosine with the unit vector x is exactly ``cosine``."""
    other = rng.normal(size=len(x))
    other -= (other @ x) * x
    return cosine * x + math.sqrt(1 - cosine**2) * other / np.linalg.norm(other)


Craft = Callable[[Attacker, np.ndarray, np.random.Generator], np.ndarray]

# Each maps an impostor u to the slots a modified client sends. M is the period: |p|^2 = 1 + M reads as 1.
PROBE_ATTACKS: dict[str, Craft] = {
    "scaled-1.2": lambda a, u, rng: 1.2 * a.replicated(u),
    "scaled-wrap": lambda a, u, rng: math.sqrt(1 + a.period) * a.replicated(u),
    # 2u where the template is, the rest of |p|^2 = 1 + M spread where it is not (copies that disagree).
    "padding-wrap": lambda a, u, rng: a.replicated(2 * u) + a.outside(a.period - 3, rng),
    # 2u in the real parts, the rest of |p|^2 = 1 + M in the imaginary parts.
    "imaginary-wrap": lambda a, u, rng: a.replicated(2 * u) + 1j * a.anywhere(a.period - 3, rng),
}

# A wolf template: passes enrolment and then matches other people's honest probes.
WOLF_ATTACKS: dict[str, Craft] = {
    "wolf-padding": lambda a, t, rng: a.replicated(2 * t) + a.outside(a.period - 3, rng),
    "wolf-scaled": lambda a, t, rng: math.sqrt(1 + a.period) * a.replicated(t),
}
