"""Bearer tokens: operators at the matcher (with scopes), one shared token between matcher and authority."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from veilface.server.problems import forbidden, unauthorized
from veilface.server.settings import OperatorToken


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class OperatorAuth:
    """Checks operator tokens by their SHA-256, comparing every digest in constant time."""

    def __init__(self, tokens: tuple[OperatorToken, ...]) -> None:
        self._tokens = tokens

    def authenticate(self, presented: str | None) -> OperatorToken:
        if presented is None:
            raise unauthorized()
        digest = hashlib.sha256(presented.encode()).digest()
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


def check_shared_token(presented: str | None, expected: str) -> None:
    if presented is None:
        raise unauthorized()
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise unauthorized("the bearer token is not valid")
