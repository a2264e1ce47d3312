"""Milliseconds since the epoch, as the authority's ledger counts time (timestamps: ``veilface.protocol.utc_now``)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
