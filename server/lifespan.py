"""What both services do around their running time: start the cipher workers; stop them and the database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import anyio

from veilface.server.database import Database


class Engine(Protocol):
    """A service's cipher engine, as far as starting and stopping it goes."""

    async def start(self) -> None: ...

    def close(self) -> None: ...


@asynccontextmanager
async def running(engine: Engine, database: Database, log: logging.Logger) -> AsyncIterator[None]:
    """Start ``engine``; on the way out, however it comes, close it and ``database`` and log the stop."""
    try:
        await engine.start()
        yield
    finally:
        await anyio.to_thread.run_sync(engine.close)
        database.dispose()
        log.info("%s stopped", database.name)
