"""Prometheus metrics of the authority, behind the matcher's shared token (the authority has no operators)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from veilface.protocol import paths
from veilface.server.authority.deps import MatcherOnly, State
from veilface.server.metrics import CONTENT_TYPE
from veilface.server.problems import problem_responses

router = APIRouter(tags=["metrics"])


@router.get(
    paths.METRICS,
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}, **problem_responses(401)},
)
async def metrics(_: MatcherOnly, state: State) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
