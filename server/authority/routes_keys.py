"""The authority's Ed25519 verification key (PEM), which signs every decision record, and (header
``X-Key-Id``) the CKKS key it decrypts under, so a matcher on other keys reports itself not ready."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from veilface.server.authority.deps import MatcherOnly, State
from veilface.server.problems import problem_responses

router = APIRouter(prefix="/v1/keys", tags=["keys"])
PEM_MEDIA_TYPE = "application/x-pem-file"
KEY_ID_HEADER = "X-Key-Id"


@router.get(
    "/signing",
    response_class=Response,
    responses={200: {"content": {PEM_MEDIA_TYPE: {}}}, **problem_responses(401)},
)
async def signing_key(_: MatcherOnly, state: State) -> Response:
    return Response(
        state.signing_key.verify_key.to_pem(), media_type=PEM_MEDIA_TYPE, headers={KEY_ID_HEADER: state.engine.key_id}
    )
