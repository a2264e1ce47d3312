"""Dependencies of the matcher's routes: its state and the calling operator (with scope checks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from veilface.server.auth import OperatorAuth, bearer_token
from veilface.server.matcher.state import MatcherState
from veilface.server.settings import OperatorToken

SUBJECT_ID_PATTERN = r"^[A-Za-z0-9._@-]{1,128}$"


def matcher_state(request: Request) -> MatcherState:
    state: MatcherState = request.app.state.matcher
    return state


State = Annotated[MatcherState, Depends(matcher_state)]


def authenticated(request: Request, state: State) -> OperatorToken:
    return state.auth.authenticate(bearer_token(request))


Operator = Annotated[OperatorToken, Depends(authenticated)]


def _scoped(scope: str) -> Callable[[OperatorToken], OperatorToken]:
    def require(operator: Operator) -> OperatorToken:
        OperatorAuth.require(operator, scope)
        return operator

    return require


EnrollOperator = Annotated[OperatorToken, Depends(_scoped("enroll"))]
VerifyOperator = Annotated[OperatorToken, Depends(_scoped("verify"))]
AdminOperator = Annotated[OperatorToken, Depends(_scoped("admin"))]

SubjectId = Annotated[str, Path(pattern=SUBJECT_ID_PATTERN, description="1-128 characters of A-Z a-z 0-9 . _ @ -")]
