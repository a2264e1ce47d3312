"""Readiness of the authority (``/healthz`` and ``/metrics``: ``server.metrics.shared_routes``); no token."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from veilface.protocol import AuthorityReadiness, paths
from veilface.server.authority.deps import State

router = APIRouter(tags=["health"])


@router.get(paths.READYZ, response_model=AuthorityReadiness, responses={503: {"model": AuthorityReadiness}})
async def readyz(state: State) -> JSONResponse:
    database = await anyio.to_thread.run_sync(state.ledger.database.ping)
    return JSONResponse(AuthorityReadiness(database=database).model_dump(), status_code=200 if database else 503)
