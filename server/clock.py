"""Timestamps as both services write them: UTC, ISO 8601 with milliseconds and a Z."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return time.time_ns() // 1_000_000
