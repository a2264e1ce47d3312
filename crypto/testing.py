"""What tests and benchmarks need from the ciphers and production code must never do: NOT FOR SERVICES.

The production ciphers draw every blinding factor themselves and only ever reveal signs. Checking the
scheme against numpy, or measuring its accuracy, needs more: a compare under factors the caller knows, the
blinded values the authority reads (not just their signs), and the SEAL steps a compare is made of, each
timed alone. They live here, in a module nothing under ``veilface.server`` or ``veilface.client`` imports,
so that no service can reach them by configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tenseal.sealapi as sealapi

from ._ckks import CkksAuthorityCipher, CkksMatcherCipher
from ._plain import PlaintextAuthorityCipher
from ._protocol import Purpose, blinding_factor, checks_for

__all__ = ["blinded_values", "blinding_factor", "checks_for", "compare_steps", "compare_with_factors"]


def compare_with_factors(
    matcher: CkksMatcherCipher, template: bytes, probe: bytes, threshold: float, factors: Sequence[int]
) -> bytes:
    """``matcher.compare`` with the blinding factors given, one per check of ``checks_for(VERIFY, threshold)``
    (the matcher's own recipe is ``blinding_factor(bits)`` per check), so that the caller can undo them."""
    stored = matcher._open(template)
    return matcher._blinded(Purpose.VERIFY, matcher._open(probe), stored, threshold, factors)


def blinded_values(
    authority: CkksAuthorityCipher | PlaintextAuthorityCipher, blinded: bytes
) -> tuple[Purpose, list[float]]:
    """The values ``sign * r * (v - t)`` per check that ``authority.decide`` reads only the signs of."""
    return authority._blinded_values(blinded)


def compare_steps(matcher: CkksMatcherCipher, template: bytes, probe: bytes) -> dict[str, Callable[[], object]]:
    """The SEAL operations a compare is made of, each to be timed alone on the matcher's own objects: what a
    compare costs is the sum of these, and no public API splits it up. Name -> a call doing that step once:

    - ``encrypt_zero``: a public-key encryption of zero (one per blinded ciphertext, re-randomising it);
    - ``mask``: one uniform mask with its read-out coefficient fixed;
    - ``multiply_relinearize``: template times probe, relinearised;
    - ``conjugate``: a complex conjugation (a key switch);
    - ``serialise``: SEAL's save of a ciphertext to the wire bytes.
    """
    evaluator, stored, fresh = matcher._evaluator, matcher._open(template), matcher._open(probe)
    out = sealapi.Ciphertext(matcher._seal)

    def multiply_relinearize() -> None:
        evaluator.multiply(stored, fresh, out)
        evaluator.relinearize_inplace(out, matcher._relin_keys)

    return {
        "encrypt_zero": lambda: matcher._encryptor.encrypt_zero(matcher._parms_id, out),
        "mask": lambda: matcher._mask(matcher._product_scale),
        "multiply_relinearize": multiply_relinearize,
        "conjugate": lambda: evaluator.complex_conjugate(fresh, matcher._conjugation_keys, out),
        "serialise": lambda: matcher._files.ciphertext_bytes(fresh),
    }
