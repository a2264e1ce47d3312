"""Liveness and readiness: the only matcher endpoints that need no token."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from veilface.server.matcher.deps import State

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    database: bool
    authority: bool


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(state: State) -> JSONResponse:
    database = await anyio.to_thread.run_sync(state.store.database.ping)
    authority = await state.authority.ready()
    body = Readiness(database=database, authority=authority)
    return JSONResponse(body.model_dump(), status_code=200 if database and authority else 503)
