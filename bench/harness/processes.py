"""The services' processes as the harness sees them: group members, what each is, memory and CPU (psutil)."""

from __future__ import annotations

import os
import time

import psutil

from veilface.server.launch import group_members

__all__ = [
    "OtherLoad",
    "alive",
    "group_members",
    "group_rss_mb",
    "live_descendants",
    "pool_workers",
    "process_kind",
    "tree_cpu_s",
    "tree_rss_mb",
]

MB = 1024.0 * 1024.0


def process_kind(pid: int) -> str:
    """What a service's process is: a pool "worker", multiprocessing's "resource-tracker", or the "service"."""
    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return "exited"
    if "resource_tracker" in command:
        return "resource-tracker"
    return "worker" if "spawn_main" in command else "service"


def _live(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.Error:
            continue
    return alive


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return _live(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def live_descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (zombies, gone but not yet reaped, excluded)."""
    return sorted(process.pid for process in _descendants(pid))


def pool_workers(pid: int) -> set[int]:
    """The worker processes of a service's process pool (not multiprocessing's resource tracker)."""
    return {child for child in live_descendants(pid) if process_kind(child) == "worker"}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _rss(process: psutil.Process) -> float:
    try:
        return process.memory_info().rss / MB
    except psutil.Error:
        return 0.0


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process and of all its descendants (its worker pool), in MB."""
    try:
        main = _rss(psutil.Process(pid))
    except psutil.Error:
        main = 0.0
    below = _descendants(pid)
    others = sum(_rss(child) for child in below)
    return {
        "main": round(main, 1),
        "children": round(others, 1),
        "total": round(main + others, 1),
        "processes": 1 + len(below),
    }


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the group (a service and its worker pool), in MB."""
    total = 0.0
    for pid in group_members(pgid):
        try:
            total += _rss(psutil.Process(pid))
        except psutil.Error:
            continue
    return round(total, 1)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used by a process and its live descendants."""
    try:
        processes = [psutil.Process(pid), *_descendants(pid)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _system_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (user..steal: everything but idle and I/O wait)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq", "steal")
    return sum(float(getattr(times, name, 0.0)) for name in busy)


class OtherLoad:
    """CPU that processes outside this benchmark used while it measured, in cores.

    Everything the benchmark runs (its own threads, the services, their workers) descends from this
    process; any other busy time on the machine is noise in the figures, so the reports carry it.
    """

    def __init__(self) -> None:
        self._busy = self._mine = self._wall = 0.0
        self.cpu_s = self.elapsed_s = 0.0

    def __enter__(self) -> OtherLoad:
        self._busy, self._mine, self._wall = _system_busy_s(), tree_cpu_s(os.getpid()), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, mine = _system_busy_s() - self._busy, tree_cpu_s(os.getpid()) - self._mine
        self.cpu_s += max(0.0, busy - mine)
        self.elapsed_s += time.perf_counter() - self._wall

    @property
    def cores(self) -> float:
        return round(self.cpu_s / self.elapsed_s, 3) if self.elapsed_s else 0.0
