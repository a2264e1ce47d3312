"""Bearer tokens: operators at the matcher (with scopes), one shared token between matcher and authority.

FastAPI's ``HTTPBearer`` parses the header; with ``auto_error=False`` a missing or malformed one reaches
the checks below as None, which answer 401 (problem+json), not FastAPI's 403.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from veilface.server.problems import forbidden, unauthorized
from veilface.server.settings import OperatorToken

Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


class OperatorAuth:
    """Checks operator tokens by their SHA-256, comparing every digest in constant time."""

    def __init__(self, tokens: tuple[OperatorToken, ...]) -> None:
        self._tokens = tokens

    def authenticate(self, presented: HTTPAuthorizationCredentials | None) -> OperatorToken:
        if presented is None:
            raise unauthorized()
        digest = hashlib.sha256(presented.credentials.encode()).digest()
        found = None
        for token in self._tokens:
            if hmac.compare_digest(token.digest, digest):
                found = token
        if found is None:
            raise unauthorized("the bearer token is not valid")
        return found

    @staticmethod
    def require(token: OperatorToken, *scopes: str) -> None:
        missing = [scope for scope in scopes if scope not in token.scopes]
        if missing:
            raise forbidden(f"this token lacks the {'+'.join(missing)} scope")


def check_shared_token(presented: HTTPAuthorizationCredentials | None, expected: str) -> None:
    if presented is None:
        raise unauthorized()
    if not hmac.compare_digest(presented.credentials.encode(), expected.encode()):
        raise unauthorized("the bearer token is not valid")
