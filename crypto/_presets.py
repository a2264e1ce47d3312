"""Named CKKS parameter presets, checked against the HomomorphicEncryption.org 128-bit table."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import ConfigurationError
from ._protocol import NORM_TOLERANCE, SCORE_BLINDING_LIMIT

# HomomorphicEncryption.org security standard, 128-bit classical, ternary secret: max total log q per N.
HE_STANDARD_128_MAX_LOG_Q: dict[int, int] = {
    1024: 27,
    2048: 54,
    4096: 109,
    8192: 218,
    16384: 438,
    32768: 881,
}


@dataclass(frozen=True)
class Preset:
    """CKKS parameters for the constant-coefficient comparison.

    The last coefficient modulus is SEAL's special (key-switching) prime; the others are data primes.
    The comparison multiplies two ciphertexts once and never rescales, so the product's scale
    ``2**(2*scale_bits)`` must fit the data primes with room for ``2 r |s - tau| 2/N`` (r <= 1000).
    """

    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int
    note: str = ""

    @property
    def total_log_q(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def data_log_q(self) -> int:
        return sum(self.coeff_mod_bit_sizes[:-1])

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @property
    def is_secure(self) -> bool:
        limit = HE_STANDARD_128_MAX_LOG_Q.get(self.poly_modulus_degree)
        return limit is not None and self.total_log_q <= limit

    def check(self, *, allow_insecure: bool = False) -> Preset:
        """Return self if usable; raise if insecure (unless allowed) or arithmetically unsound."""
        if len(self.coeff_mod_bit_sizes) < 2:
            raise ConfigurationError(f"preset {self.name}: needs at least one data prime and a special prime")
        # The score is read doubled, 2 r (s - tau) Delta^2 2/N, with r <= SCORE_BLINDING_LIMIT and
        # |s - tau| <= 2 + eps for any probe and template that pass the norm check: below q/2, with room for
        # noise (q is a prime just below 2^data_log_q).
        largest = 2 * SCORE_BLINDING_LIMIT * (2 + NORM_TOLERANCE) * 2.0 ** (2 * self.scale_bits + 1)
        if largest >= 0.999 * 2.0 ** (self.data_log_q - 1) * self.poly_modulus_degree:
            raise ConfigurationError(
                f"preset {self.name}: scale 2^{self.scale_bits} leaves no room in the data primes "
                f"({self.data_log_q} bits) for the blinded comparison"
            )
        if not self.is_secure and not allow_insecure:
            limit = HE_STANDARD_128_MAX_LOG_Q.get(self.poly_modulus_degree, 0)
            raise ConfigurationError(
                f"preset {self.name} is below 128-bit security (log q = {self.total_log_q}, the "
                f"HomomorphicEncryption.org limit for N={self.poly_modulus_degree} is {limit}); "
                "pass allow_insecure=True only for experiments"
            )
        return self


DEFAULT_PRESET = "ckks-n4096-q60-49-d29"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="ckks-n4096-q60-49-d29",
            poly_modulus_degree=4096,
            coeff_mod_bit_sizes=(60, 49),
            scale_bits=29,
            note="default: 66 KB probes, max score error 7.6e-6 at 512-D (docs/design.md §3.1, §7)",
        ),
        Preset(
            name="ckks-n8192-q60-60-60-d40",
            poly_modulus_degree=8192,
            coeff_mod_bit_sizes=(60, 60, 60),
            scale_bits=40,
            note=(
                "more margin: two data primes and scale 2^40 give ~2^11 times less encoding error and a "
                "larger noise budget, at about 4x the ciphertext size and compare time"
            ),
        ),
    )
}


def get_preset(name: str, *, allow_insecure: bool = False) -> Preset:
    """Look up a named preset and check it; unknown names list the known ones."""
    try:
        preset = PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ConfigurationError(f"unknown preset {name!r}; known presets: {known}") from None
    return preset.check(allow_insecure=allow_insecure)
