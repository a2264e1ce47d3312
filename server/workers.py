"""Homomorphic work off the event loop: a process pool whose workers each build one cipher from bytes.

TenSEAL holds the GIL and its objects do not pickle, so each worker process receives the bundle bytes
once (the pool initializer), builds its cipher, and then exchanges only bytes with the service. Workers
ignore SIGINT/SIGTERM (the service shuts the pool down in order), exit on their own when their parent
disappears, so no worker outlives the service, and run at a lower CPU priority than the service itself.
Tests and benchmarks may run a cipher inline instead.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from veilface.protocol import ProblemType
from veilface.server.problems import Problem

log = logging.getLogger("veilface.server.workers")

_worker_cipher: Any = None
PARENT_POLL_SECONDS = 0.5
# Workers yield the CPU to their service's event loop: when the homomorphic work saturates the cores, a
# starved loop's own delay counted against the authority deadline (503 though the authority had answered).
WORKER_NICENESS = 10


def exit_with_parent(parent_pid: int, on_orphaned: Callable[[], None]) -> None:
    """Call ``on_orphaned`` (from a daemon thread) once ``parent_pid`` is no longer this process's parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        on_orphaned()

    threading.Thread(target=watch, name="veilface-parent-watch", daemon=True).start()


def _initialise(build: Callable[[], Any], parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent(parent_pid, lambda: os._exit(0))
    os.nice(WORKER_NICENESS)
    global _worker_cipher
    _worker_cipher = build()
    # Ciphers that can precompute their per-request randomness do it now, before the first request.
    replenish = getattr(_worker_cipher, "replenish", None)
    if replenish is not None:
        replenish()


def _call(method: str, args: tuple[Any, ...]) -> Any:
    return getattr(_worker_cipher, method)(*args)


def _ready() -> bool:
    return _worker_cipher is not None


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("background work failed", extra={"error": type(future.exception()).__name__})


class CipherRunner(Protocol):
    async def call(self, method: str, *args: Any) -> Any: ...

    def background(self, method: str) -> None: ...

    async def start(self) -> None: ...

    def close(self) -> None: ...


class InlineRunner:
    """Runs a cipher in the calling thread: for plaintext stand-ins and in-process tests only."""

    def __init__(self, cipher: Any) -> None:
        self._cipher = cipher

    async def call(self, method: str, *args: Any) -> Any:
        return getattr(self._cipher, method)(*args)

    def background(self, method: str) -> None:
        return None  # inline ciphers do their work on demand

    async def start(self) -> None:
        return None

    def close(self) -> None:
        return None


class ProcessRunner:
    """A pool of ``workers`` processes, each holding the cipher that ``build()`` makes."""

    def __init__(self, build: Callable[[], Any], workers: int) -> None:
        self._build = build
        self._workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending: Future[Any] | None = None

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_initialise,
            initargs=(self._build, os.getpid()),
        )

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = self._new_executor()
            return self._executor

    async def start(self) -> None:
        """Start every worker now, so a bad bundle fails at start-up and the first request is not slow."""
        loop = asyncio.get_running_loop()
        executor = self._current()
        await asyncio.gather(*(loop.run_in_executor(executor, _ready) for _ in range(self._workers)))

    async def call(self, method: str, *args: Any) -> Any:
        """Run on a worker; if the pool broke (a worker was killed or ran out of memory), replace it and try
        once more, so one lost worker costs no request. Input that kills a worker twice gets 503."""
        for attempt in range(2):
            executor = self._current()
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, _call, method, args)
            except BrokenProcessPool:
                log.error("worker process died; restarting the pool", extra={"operation": method, "attempt": attempt})
                self._discard(executor)
        raise Problem(ProblemType.WORKER_FAILED, "a worker process failed; retry later")

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    def background(self, method: str) -> None:
        """Queue ``method`` on some worker without waiting for it; at most one such task is queued at a time."""
        if self._pending is not None and not self._pending.done():
            return
        try:
            self._pending = self._current().submit(_call, method, ())
        except (BrokenProcessPool, RuntimeError):
            return  # the pool is being replaced or shut down; the next request starts afresh
        self._pending.add_done_callback(_log_failure)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
