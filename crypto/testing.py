"""Hooks for benchmarks and tests into the ciphers' blinding; never used by the services.

``compare_with_factors`` blinds with given factors instead of fresh ones, and ``blinded_values`` returns
what the authority reads instead of the one decision it makes: together they undo the blinding, which is
exactly what the authority must never be able to do.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._ckks import CkksAuthorityCipher, CkksMatcherCipher
from ._plain import PlaintextAuthorityCipher, PlaintextMatcherCipher
from ._protocol import Purpose


def compare_with_factors(
    matcher: CkksMatcherCipher | PlaintextMatcherCipher,
    template: bytes,
    probe: bytes,
    threshold: float,
    factors: Sequence[int],
) -> bytes:
    """``matcher.compare`` with the score's blinding factor given: ``factors`` is ``[r]``, r in [1, 1000]."""
    if isinstance(matcher, CkksMatcherCipher):
        return matcher._blinded(Purpose.VERIFY, matcher._open(probe), matcher._open(template), threshold, factors)
    return matcher._blinded(Purpose.VERIFY, matcher._open(probe), matcher._open(template), threshold, factors)


def blinded_values(
    authority: CkksAuthorityCipher | PlaintextAuthorityCipher, blinded: bytes
) -> tuple[Purpose, list[float]]:
    """What the authority reads: |x|^2 - 1, the projections, then (for a verification) r (score - threshold),
    last."""
    return authority._values(blinded)
