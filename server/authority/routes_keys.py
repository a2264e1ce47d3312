"""The authority's Ed25519 verification key (PEM), which signs every decision record, and (header
``X-Key-Id``) the CKKS key it decrypts under, so a matcher on other keys reports itself not ready."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from veilface.protocol import headers, paths
from veilface.server.authority.deps import MatcherOnly, State
from veilface.server.problems import problem_responses

router = APIRouter(tags=["keys"])


@router.get(
    paths.SIGNING_KEY,
    response_class=Response,
    responses={200: {"content": {headers.PEM_MEDIA_TYPE: {}}}, **problem_responses(401)},
)
async def signing_key(_: MatcherOnly, state: State) -> Response:
    return Response(
        state.signing_key.verify_key.to_pem(),
        media_type=headers.PEM_MEDIA_TYPE,
        headers={headers.KEY_ID: state.engine.key_id},
    )
