"""Homomorphic work off the event loop: a process pool whose workers each build one cipher from bytes.

TenSEAL holds the GIL and its objects do not pickle, so each worker process receives the bundle bytes
once (the pool initializer), builds its cipher, and then exchanges only bytes with the service. Workers
ignore SIGINT/SIGTERM (the service shuts the pool down in order) and exit on their own when their parent
disappears, so no worker outlives the service. Tests and benchmarks may run a cipher inline instead.
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
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from veilface.server.problems import Problem

log = logging.getLogger("veilface.server.workers")

_worker_cipher: Any = None
PARENT_POLL_SECONDS = 0.5


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
    global _worker_cipher
    _worker_cipher = build()


def _call(method: str, args: tuple[Any, ...]) -> Any:
    return getattr(_worker_cipher, method)(*args)


def _ready() -> bool:
    return _worker_cipher is not None


class CipherRunner(Protocol):
    async def call(self, method: str, *args: Any) -> Any: ...

    async def start(self) -> None: ...

    def close(self) -> None: ...


class InlineRunner:
    """Runs a cipher in the calling thread: for plaintext stand-ins and in-process tests only."""

    def __init__(self, cipher: Any) -> None:
        self._cipher = cipher

    async def call(self, method: str, *args: Any) -> Any:
        return getattr(self._cipher, method)(*args)

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
        executor = self._current()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, _call, method, args)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): replace the pool so later requests are served.
            log.error("worker process died; restarting the pool", extra={"operation": method})
            with self._lock:
                if self._executor is executor:
                    self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            raise Problem(
                503, "worker-failed", "Service unavailable", "a worker process failed; retry the request"
            ) from None

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
