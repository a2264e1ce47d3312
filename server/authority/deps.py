"""Dependencies of the authority's routes: its state and the matcher's shared token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from veilface.server.auth import Bearer, check_shared_token
from veilface.server.authority.state import AuthorityState


def authority_state(request: Request) -> AuthorityState:
    state: AuthorityState = request.app.state.authority
    return state


State = Annotated[AuthorityState, Depends(authority_state)]


def matcher_only(credentials: Bearer, state: State) -> None:
    check_shared_token(credentials, state.matcher_token)


MatcherOnly = Annotated[None, Depends(matcher_only)]
