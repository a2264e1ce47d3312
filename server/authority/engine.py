"""The authority's decryption, run in a worker process so the event loop never waits on it."""

from __future__ import annotations

from dataclasses import dataclass

from veilface.crypto import AuthorityCipher, CkksAuthorityCipher, KeyBundle, Outcome, Purpose
from veilface.protocol import blinded_body_limit
from veilface.server.workers import CipherRunner, InlineRunner, ProcessRunner


@dataclass(frozen=True)
class AuthorityCipherSpec:
    """The secret bundle as bytes, so it pickles into the worker; it never leaves the authority's host."""

    bundle: KeyBundle

    def __call__(self) -> CkksAuthorityCipher:
        return CkksAuthorityCipher(self.bundle)


class AuthorityEngine:
    def __init__(self, runner: CipherRunner, *, key_id: str, preset: str, ciphertext_bytes: int) -> None:
        self._runner = runner
        self.key_id = key_id
        self.preset = preset
        self.max_blinded_bytes = blinded_body_limit(ciphertext_bytes)

    @classmethod
    def in_processes(cls, bundle: KeyBundle, *, workers: int) -> AuthorityEngine:
        spec = AuthorityCipherSpec(bundle)
        probe = spec()
        return cls(
            ProcessRunner(spec, workers),
            key_id=probe.key_id,
            preset=probe.preset,
            ciphertext_bytes=probe.ciphertext_bytes,
        )

    @classmethod
    def inline(cls, cipher: AuthorityCipher, *, ciphertext_bytes: int) -> AuthorityEngine:
        """Decrypt on the event loop: for the plaintext stand-in and in-process tests only."""
        return cls(InlineRunner(cipher), key_id=cipher.key_id, preset=cipher.preset, ciphertext_bytes=ciphertext_bytes)

    async def start(self) -> None:
        await self._runner.start()

    def close(self) -> None:
        self._runner.close()

    async def decide(self, blinded: bytes) -> tuple[Purpose, Outcome]:
        purpose, outcome = await self._runner.call("decide", blinded)
        return Purpose(purpose), Outcome(outcome)
