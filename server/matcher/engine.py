"""The matcher's homomorphic operations, run in worker processes (or inline for stand-ins in tests)."""

from __future__ import annotations

from dataclasses import dataclass

from veilface.crypto import CkksMatcherCipher, KeyBundle, MatcherCipher
from veilface.protocol import embedding_body_limit
from veilface.server.workers import CipherRunner, InlineRunner, ProcessRunner


@dataclass(frozen=True)
class MatcherCipherSpec:
    """What a worker needs to build its cipher: the bundle is bytes and strings, so it pickles."""

    bundle: KeyBundle
    model_id: str
    dimension: int

    def __call__(self) -> CkksMatcherCipher:
        return CkksMatcherCipher(self.bundle, model_id=self.model_id, dimension=self.dimension)


class MatcherEngine:
    def __init__(
        self, runner: CipherRunner, *, key_id: str, model_id: str, dimension: int, preset: str, ciphertext_bytes: int
    ) -> None:
        self._runner = runner
        self.key_id = key_id
        self.model_id = model_id
        self.dimension = dimension
        self.preset = preset
        self.max_envelope_bytes = embedding_body_limit(ciphertext_bytes)

    @classmethod
    def in_processes(cls, bundle: KeyBundle, *, model_id: str, dimension: int, workers: int) -> MatcherEngine:
        """The production engine. Building one cipher here checks the bundle (no secret key) before any worker."""
        spec = MatcherCipherSpec(bundle, model_id, dimension)
        probe = spec()
        return cls(
            ProcessRunner(spec, workers),
            key_id=probe.key_id,
            model_id=model_id,
            dimension=dimension,
            preset=probe.preset,
            ciphertext_bytes=probe.ciphertext_bytes,
        )

    @classmethod
    def inline(cls, cipher: MatcherCipher, *, ciphertext_bytes: int) -> MatcherEngine:
        """Run ``cipher`` on the event loop: for the plaintext stand-in and in-process tests only."""
        return cls(
            InlineRunner(cipher),
            key_id=cipher.key_id,
            model_id=cipher.model_id,
            dimension=cipher.dimension,
            preset=cipher.preset,
            ciphertext_bytes=ciphertext_bytes,
        )

    async def start(self) -> None:
        await self._runner.start()

    def close(self) -> None:
        self._runner.close()

    async def blind_norm(self, template: bytes) -> bytes:
        result: bytes = await self._runner.call("blind_norm", template)
        self._runner.background("replenish")
        return result

    async def compare(self, template: bytes, probe: bytes, threshold: float) -> bytes:
        result: bytes = await self._runner.call("compare", template, probe, threshold)
        # Refill the projection planes and encryption of zero this used while the service waits for the authority.
        self._runner.background("replenish")
        return result
