"""Run one service under uvicorn: on a host and port, or on a listening socket inherited from a supervisor.

SIGTERM and SIGINT stop the server gracefully (uvicorn finishes in-flight requests, the app's shutdown
closes its worker pool and database), then the process exits with status 0 and runs its exit handlers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from veilface.server.workers import exit_with_parent

log = logging.getLogger("veilface.server")

MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number for the arena cap, from glibc's malloc.h


def limit_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at two; without a cap each new thread gets its own, up to eight per core.

    The services' thread pools pass 66-200 kB ciphertexts around; memory freed in one thread's arena is not
    reused by the others, so the matcher's RSS crept up under load (+20 MB over two minutes at 50 clients on
    two cores, +3 MB with the cap, at the same throughput). True if applied; False off glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    return bool(mallopt and mallopt(_M_ARENA_MAX, MALLOC_ARENAS))


def _exit_cleanly(signum: int, _frame: FrameType | None) -> None:
    sys.exit(0)


def run_app(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    fd: int | None = None,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    parent_pid: int | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT (or, with ``parent_pid``, until that process is gone)."""
    limit_malloc_arenas()  # before uvicorn, anyio and the database start their threads
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the stop signal after shutting down; exit 0 instead, running atexit handlers.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    if parent_pid is not None:
        exit_with_parent(parent_pid, lambda: os.kill(os.getpid(), signal.SIGTERM))
    sockets = [socket.socket(fileno=fd)] if fd is not None else None
    if sockets is None and host not in ("127.0.0.1", "::1", "localhost") and ssl_certfile is None:
        log.warning("listening beyond loopback without TLS; terminate TLS in front of this service")
    server.run(sockets=sockets)
