"""The public key bundle and the authority's signed description of it, for clients to verify."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from veilface.server.matcher.deps import Operator, State
from veilface.server.problems import problem_responses

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class PublicKeys(BaseModel):
    key_id: str
    preset: str
    model_id: str
    dimension: int
    description: dict[str, Any]
    signature: str
    bundle: str


@router.get("/public", response_model=PublicKeys, responses=problem_responses(401))
async def public_keys(_: Operator, state: State) -> PublicKeys:
    return PublicKeys(**state.public_keys)
