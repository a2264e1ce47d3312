"""RFC 9457 problem details: every error either service returns is mapped here, and only here.

The problem types themselves (slug, status, title) are :class:`veilface.protocol.ProblemType`. Details
name what was wrong, never a value.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from veilface.crypto import InvalidCiphertextError, VeilfaceError
from veilface.protocol import PROBLEM_MEDIA_TYPE, ProblemDetails, ProblemType
from veilface.protocol.headers import RETRY_AFTER

log = logging.getLogger("veilface.server")


class Problem(Exception):
    """An error with its problem type (and so its HTTP status, unless given); raise it anywhere in a request."""

    def __init__(
        self, kind: ProblemType, detail: str, *, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = kind.status if status is None else status
        self.detail = detail
        self.headers = headers or {}


def unauthorized(detail: str = "a valid bearer token is required") -> Problem:
    return Problem(ProblemType.UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> Problem:
    return Problem(ProblemType.FORBIDDEN, detail)


def invalid_request(detail: str) -> Problem:
    return Problem(ProblemType.INVALID_REQUEST, detail)


def retry_later(kind: ProblemType, detail: str) -> Problem:
    """A transient failure (503): the client may retry after a second."""
    return Problem(kind, detail, headers={RETRY_AFTER: "1"})


def problem_response(problem: Problem) -> JSONResponse:
    kind = problem.kind
    body = ProblemDetails(type=kind.uri, title=kind.title, status=problem.status, detail=problem.detail)
    return JSONResponse(
        body.model_dump(), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


_HTTP_TYPES = {404: ProblemType.NOT_FOUND, 405: ProblemType.METHOD_NOT_ALLOWED}
_INTERNAL = "the service failed; see its logs"


def _validation_detail(exc: RequestValidationError) -> str:
    """Where validation failed and why, without echoing the submitted values."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(item) for item in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = _HTTP_TYPES.get(exc.status_code, ProblemType.HTTP_ERROR)
        detail = exc.detail if isinstance(exc.detail, str) else kind.title
        return problem_response(Problem(kind, detail, status=exc.status_code, headers=dict(exc.headers or {})))

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(invalid_request(_validation_detail(exc)))

    async def on_ciphertext(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidCiphertextError)
        return problem_response(Problem(ProblemType.INVALID_CIPHERTEXT, exc.message))

    async def on_database(_: Request, exc: Exception) -> JSONResponse:
        # The database server is down, restarting or refusing connections: transient, as for the authority.
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return problem_response(
            retry_later(ProblemType.DATABASE_UNAVAILABLE, "the service cannot reach its database; retry later")
        )

    async def on_veilface(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VeilfaceError)
        log.error("unhandled veilface error", extra={"error": type(exc).__name__})
        return problem_response(Problem(ProblemType.INTERNAL, _INTERNAL))

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", extra={"error": type(exc).__name__})
        return problem_response(Problem(ProblemType.INTERNAL, _INTERNAL))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(InvalidCiphertextError, on_ciphertext)
    app.add_exception_handler(OperationalError, on_database)
    app.add_exception_handler(InterfaceError, on_database)
    app.add_exception_handler(VeilfaceError, on_veilface)
    app.add_exception_handler(Exception, on_unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem statuses a route can return."""
    return {
        status: {"model": ProblemDetails, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": "problem details"}
        for status in statuses
    }
