"""What tests and benchmarks need from the ciphers and production code must never do: NOT FOR SERVICES.

The production ciphers draw every blinding factor themselves and only ever reveal signs. Checking the
scheme against numpy, or measuring its accuracy, needs more: a compare under a factor the caller knows, the
values the authority reads (not just the decision), and the SEAL steps a compare is made of, each timed
alone. They live here, in a module nothing under ``veilface.server`` or ``veilface.client`` imports, so that
no service can reach them by configuration. Together they undo the blinding, which is exactly what the
authority must never be able to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tenseal.sealapi as sealapi

from ._ckks import CkksAuthorityCipher, CkksMatcherCipher
from ._plain import PlaintextAuthorityCipher, PlaintextMatcherCipher
from ._protocol import Purpose, blinding_factor, checks_for

__all__ = ["blinded_values", "blinding_factor", "checks_for", "compare_steps", "compare_with_factors"]


def compare_with_factors(
    matcher: CkksMatcherCipher | PlaintextMatcherCipher,
    template: bytes,
    probe: bytes,
    threshold: float,
    factors: Sequence[int],
) -> bytes:
    """``matcher.compare`` with the score's blinding factor given: ``factors`` is ``[r]``, r in [1, 1000]
    (the matcher's own recipe is ``blinding_factor(limit)`` per check of ``checks_for``)."""
    if isinstance(matcher, CkksMatcherCipher):
        return matcher._blinded(Purpose.VERIFY, matcher._open(probe), matcher._open(template), threshold, factors)
    return matcher._blinded(Purpose.VERIFY, matcher._open(probe), matcher._open(template), threshold, factors)


def blinded_values(
    authority: CkksAuthorityCipher | PlaintextAuthorityCipher, blinded: bytes
) -> tuple[Purpose, list[float]]:
    """What the authority reads: |x|^2 - 1, the projections, then (for a verification) r (score - threshold),
    last."""
    return authority._values(blinded)


def compare_steps(matcher: CkksMatcherCipher, template: bytes, probe: bytes) -> dict[str, Callable[[], object]]:
    """The SEAL operations a compare is made of, each to be timed alone on the matcher's own objects: what a
    compare costs is about the sum of these, and no public API splits it up. Name -> a call doing that step once:

    - ``encrypt_zero``: a public-key encryption of zero (one per request, re-randomising what is sent);
    - ``multiply_relinearize``: template times probe, relinearised;
    - ``conjugate``: a complex conjugation (a key switch);
    - ``serialise``: SEAL's save of a ciphertext to the wire bytes.
    """
    evaluator = matcher._evaluator
    stored, fresh = matcher._open(template).ciphertext, matcher._open(probe).ciphertext
    out = sealapi.Ciphertext(matcher._seal)

    def encrypt_zero() -> None:
        matcher._encryptor.encrypt_zero(matcher._parms_id, out)

    def multiply_relinearize() -> None:
        evaluator.multiply(stored, fresh, out)
        evaluator.relinearize_inplace(out, matcher._relin_keys)

    def conjugate() -> None:
        evaluator.complex_conjugate(fresh, matcher._conjugation_keys, out)

    def serialise() -> bytes:
        return matcher._files.ciphertext_bytes(fresh)

    return {
        "encrypt_zero": encrypt_zero,
        "multiply_relinearize": multiply_relinearize,
        "conjugate": conjugate,
        "serialise": serialise,
    }
