"""RFC 9457 problem details: every error either service returns is mapped here, and only here.

Problem types are ``tag:`` URIs (RFC 4151): stable identifiers that need no web site, e.g.
``tag:veilface,2025:problems/probe-not-normalised``. Details name what was wrong, never a value.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from veilface.crypto import InvalidCiphertextError, VeilfaceError

PROBLEM_BASE = "tag:veilface,2025:problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = logging.getLogger("veilface.server")


class ProblemDetails(BaseModel):
    type: str
    title: str
    status: int
    detail: str


class Problem(Exception):
    """An error with its HTTP status and problem type; raise it anywhere in a request."""

    def __init__(
        self, status: int, slug: str, title: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}


def unauthorized(detail: str = "a valid bearer token is required") -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Forbidden", detail)


def invalid_request(detail: str) -> Problem:
    return Problem(422, "invalid-request", "Invalid request", detail)


def problem_response(problem: Problem) -> JSONResponse:
    body = ProblemDetails(
        type=PROBLEM_BASE + problem.slug, title=problem.title, status=problem.status, detail=problem.detail
    )
    return JSONResponse(
        body.model_dump(), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


_HTTP_SLUGS = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
}


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
        slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(Problem(exc.status_code, slug, title, detail, headers=dict(exc.headers or {})))

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(invalid_request(_validation_detail(exc)))

    async def on_ciphertext(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidCiphertextError)
        return problem_response(Problem(422, "invalid-ciphertext", "Invalid ciphertext", exc.message))

    async def on_database(_: Request, exc: Exception) -> JSONResponse:
        # The database server is down, restarting or refusing connections: transient, as for the authority.
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return problem_response(
            Problem(
                503,
                "database-unavailable",
                "Database unavailable",
                "the service cannot reach its database; retry later",
                headers={"Retry-After": "1"},
            )
        )

    async def on_veilface(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VeilfaceError)
        log.error("unhandled veilface error", extra={"error": type(exc).__name__})
        return problem_response(Problem(500, "internal", "Internal error", "the service failed; see its logs"))

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", extra={"error": type(exc).__name__})
        return problem_response(Problem(500, "internal", "Internal error", "the service failed; see its logs"))

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
