"""The public key bundle and the authority's signed description of it, for clients to verify."""

from __future__ import annotations

from fastapi import APIRouter

from veilface.protocol import PublicKeysAnswer, paths
from veilface.server.matcher.deps import Operator, State
from veilface.server.problems import problem_responses

router = APIRouter(tags=["keys"])


@router.get(paths.PUBLIC_KEYS, response_model=PublicKeysAnswer, responses=problem_responses(401))
async def public_keys(_: Operator, state: State) -> PublicKeysAnswer:
    return state.public_keys
