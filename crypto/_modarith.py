"""Exact arithmetic mod 60-bit primes on numpy uint64 vectors (no Python loop over coefficients)."""

from __future__ import annotations

import os

import numpy as np

_LOW30 = np.uint64((1 << 30) - 1)
_SHIFT30 = np.uint64(30)
_LOW32_INT = (1 << 32) - 1
_LOW32 = np.uint64(_LOW32_INT)
_SHIFT32 = np.uint64(32)


def uniform_mod(q: int, count: int) -> np.ndarray:
    """count values uniform in [0, q) from os.urandom, by rejection (no modulo bias)."""
    shift = np.uint64(64 - q.bit_length())
    values = np.frombuffer(os.urandom(8 * count), dtype=np.uint64) >> shift
    bound = np.uint64(q)
    while True:
        rejected = values >= bound
        n_bad = int(rejected.sum())
        if n_bad == 0:
            return values
        values = values.copy()
        values[rejected] = np.frombuffer(os.urandom(8 * n_bad), dtype=np.uint64) >> shift


def sum_mod(values: np.ndarray, q: int) -> int:
    """Exact sum of uint64 values below 2^62, modulo q (split so numpy's sums cannot overflow)."""
    high = int(np.sum(values >> np.uint64(32), dtype=np.uint64))
    low = int(np.sum(values & np.uint64(0xFFFFFFFF), dtype=np.uint64))
    return ((high << 32) + low) % q


class Weights:
    """A fixed vector below 2^60, split once into 30-bit halves for exact dot products mod q."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.ascontiguousarray(values, dtype=np.uint64)
        self.high, self.low = self.values >> _SHIFT30, self.values & _LOW30

    def dot(self, values: np.ndarray, q: int) -> int:
        """Exact <values, self> mod q for values below 2^60."""
        high, low = values >> _SHIFT30, values & _LOW30
        top = sum_mod(high * self.high, q)
        middle = sum_mod(high * self.low, q) + sum_mod(low * self.high, q)
        bottom = sum_mod(low * self.low, q)
        return ((top << 60) + (middle << 30) + bottom) % q


def mul_scalar_mod(a: np.ndarray, b: int, q: int) -> np.ndarray:
    """Elementwise a * b mod q for a vector a < q and a scalar b < q < 2^63 (Shoup's method).

    With b' = floor(b 2^64 / q), floor(a b' / 2^64) is floor(a b / q) or one less, so a b - that * q,
    computed mod 2^64, lies in [0, 2q); the 128-bit high product is assembled from 32-bit halves.
    """
    a = np.asarray(a, dtype=np.uint64)
    shoup = (b << 64) // q
    c1, c0 = np.uint64(shoup >> 32), np.uint64(shoup & _LOW32_INT)
    a1, a0 = a >> _SHIFT32, a & _LOW32
    lo_lo, hi_lo, lo_hi = a0 * c0, a1 * c0, a0 * c1
    cross = (lo_lo >> _SHIFT32) + (hi_lo & _LOW32) + (lo_hi & _LOW32)
    quotient = a1 * c1 + (hi_lo >> _SHIFT32) + (lo_hi >> _SHIFT32) + (cross >> _SHIFT32)
    with np.errstate(over="ignore"):
        remainder = a * np.uint64(b) - quotient * np.uint64(q)  # exact mod 2^64
    return np.where(remainder >= np.uint64(q), remainder - np.uint64(q), remainder)


def mul_mod_exact(a: np.ndarray, b: np.ndarray, q: int) -> np.ndarray:
    """Elementwise a * b mod q with Python integers: for one-off set-up, not for request paths."""
    return np.array([x * y % q for x, y in zip(a.tolist(), b.tolist(), strict=True)], dtype=np.uint64)


def crt(residues: list[int], primes: list[int], modulus: int) -> int:
    """The centred integer in (-Q/2, Q/2] with the given residues."""
    value = 0
    for residue, q in zip(residues, primes, strict=True):
        rest = modulus // q
        value += residue * rest * pow(rest, -1, q)
    value %= modulus
    return value - modulus if value > modulus // 2 else value
