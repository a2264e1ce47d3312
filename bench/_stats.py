"""Small shared helpers for benchmarks: percentiles, timers, machine description, markdown tables."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

#: A benchmark's results: what ``--json`` writes, keys as each benchmark's README section lists them.
Report = dict[str, Any]

T = TypeVar("T")


class Progress(Protocol):
    """Told what a long benchmark is doing: a step, and how far into it (``done`` of ``total``, if known)."""

    def __call__(self, step: str, done: float = 0.0, total: float | None = None) -> None: ...


def quiet(step: str, done: float = 0.0, total: float | None = None) -> None:
    """A ``Progress`` that tells no one."""


def percentiles(samples: Sequence[float], *qs: int) -> dict[str, float]:
    """{'p50': ..., 'p95': ...} in the samples' unit, rounded for readable JSON."""
    data = np.asarray(samples, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(data, q)), 4) for q in (qs or (50, 95))}


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run fn once; return its result and the elapsed milliseconds."""
    start = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - start) * 1000.0


def machine() -> dict[str, Any]:
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        model = ""
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "revision": source_revision(),
    }


def source_revision() -> str | None:
    """The git commit the measured code comes from, ``+dirty`` when tracked source files differ from it.

    ``None`` outside a git checkout (an installed wheel): results then say what they can.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        changes = subprocess.run(
            # Committed results do not change what is measured.
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)bench/results"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if changes else "")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def targets_table(targets: Sequence[dict[str, Any]]) -> str:
    """Issue 7's targets (``target``, ``measured``, ``met``) as a markdown table."""
    return markdown_table(
        ["issue 7 target", "measured", "met"],
        [[row["target"], row["measured"], "yes" if row["met"] else "NO"] for row in targets],
    )
