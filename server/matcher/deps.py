"""Dependencies of the matcher's routes: its state and the calling operator (with scope checks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from veilface.protocol.paths import SUBJECT_ID_PATTERN, SUBJECT_ID_SYNTAX
from veilface.server.auth import Bearer, OperatorAuth
from veilface.server.matcher.state import MatcherState
from veilface.server.settings import OperatorToken


def matcher_state(request: Request) -> MatcherState:
    state: MatcherState = request.app.state.matcher
    return state


State = Annotated[MatcherState, Depends(matcher_state)]


def authenticated(credentials: Bearer, state: State) -> OperatorToken:
    return state.auth.authenticate(credentials)


Operator = Annotated[OperatorToken, Depends(authenticated)]


def _scoped(scope: str) -> Callable[[OperatorToken], OperatorToken]:
    def require(operator: Operator) -> OperatorToken:
        OperatorAuth.require(operator, scope)
        return operator

    return require


#: An operator with the admin scope: erasure, subject metadata and ``/metrics``.
admin_only = _scoped("admin")
EnrollOperator = Annotated[OperatorToken, Depends(_scoped("enroll"))]
VerifyOperator = Annotated[OperatorToken, Depends(_scoped("verify"))]
AdminOperator = Annotated[OperatorToken, Depends(admin_only)]

SubjectId = Annotated[str, Path(pattern=SUBJECT_ID_PATTERN, description=SUBJECT_ID_SYNTAX)]
