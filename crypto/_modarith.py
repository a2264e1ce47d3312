"""Exact arithmetic mod 60-bit primes on numpy uint64 vectors (no Python loop over coefficients)."""

from __future__ import annotations

import os

import numpy as np

_LOW30 = np.uint64((1 << 30) - 1)
_SHIFT30 = np.uint64(30)


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
