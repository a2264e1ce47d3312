"""Readiness of the matcher (``/healthz`` and ``/metrics``: ``server.metrics.shared_routes``); no token."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from veilface.protocol import MatcherReadiness, paths
from veilface.server.matcher.deps import State

router = APIRouter(tags=["health"])


@router.get(paths.READYZ, response_model=MatcherReadiness, responses={503: {"model": MatcherReadiness}})
async def readyz(state: State) -> JSONResponse:
    database = await anyio.to_thread.run_sync(state.store.database.ping)
    authority = await state.authority.ready()
    body = MatcherReadiness(database=database, authority=authority)
    return JSONResponse(body.model_dump(), status_code=200 if database and authority else 503)
