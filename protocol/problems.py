"""RFC 9457 problem types: every error either service answers is one of :class:`ProblemType`.

Problem types are ``tag:`` URIs (RFC 4151): stable identifiers that need no web site, e.g.
``tag:veilface,2025:problems/probe-not-normalised``. A problem's ``detail`` names what was wrong, never a value.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel

PROBLEM_BASE = "tag:veilface,2025:problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemType(Enum):
    """A problem's slug (the end of its URI), its usual HTTP status and its title."""

    # Either service.
    UNAUTHORIZED = ("unauthorized", 401, "Unauthorized")
    FORBIDDEN = ("forbidden", 403, "Forbidden")
    NOT_FOUND = ("not-found", 404, "Not found")
    METHOD_NOT_ALLOWED = ("method-not-allowed", 405, "Method not allowed")
    HTTP_ERROR = ("http-error", 400, "HTTP error")  # any other HTTP status the framework answers
    PAYLOAD_TOO_LARGE = ("payload-too-large", 413, "Payload too large")
    UNSUPPORTED_MEDIA_TYPE = ("unsupported-media-type", 415, "Unsupported media type")
    INVALID_REQUEST = ("invalid-request", 422, "Invalid request")
    INVALID_CIPHERTEXT = ("invalid-ciphertext", 422, "Invalid ciphertext")
    REPLAYED_REQUEST = ("replayed-request", 409, "Replayed request")
    # A probe whose exact bytes already got a signed decision (docs/design.md §2.6): encrypt it afresh.
    REPLAYED_PROBE = ("replayed-probe", 409, "Replayed probe")
    BUDGET_EXHAUSTED = ("budget-exhausted", 429, "Decision budget exhausted")
    INTERNAL = ("internal", 500, "Internal error")
    DATABASE_UNAVAILABLE = ("database-unavailable", 503, "Database unavailable")
    WORKER_FAILED = ("worker-failed", 503, "Service unavailable")
    # The matcher.
    SUBJECT_NOT_FOUND = ("subject-not-found", 404, "Subject not found")
    SUBJECT_EXISTS = ("subject-exists", 409, "Subject exists")
    TEMPLATE_NOT_NORMALISED = ("template-not-normalised", 422, "Template not normalised")
    PROBE_NOT_NORMALISED = ("probe-not-normalised", 422, "Probe not normalised")
    REENROLMENT_REQUIRED = ("reenrolment-required", 422, "Re-enrolment required")
    AUTHORITY_BAD_ANSWER = ("authority-bad-answer", 502, "Bad answer from the authority")
    AUTHORITY_UNAVAILABLE = ("authority-unavailable", 503, "Authority unavailable")

    def __init__(self, slug: str, status: int, title: str) -> None:
        self.slug = slug
        self.status = status
        self.title = title

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug

    @classmethod
    def from_uri(cls, uri: str) -> ProblemType | None:
        """The type a problem's ``type`` member names, or None for one this release does not know."""
        return _BY_URI.get(uri)


_BY_URI = {kind.uri: kind for kind in ProblemType}


class ProblemDetails(BaseModel):
    """The body of every error answer (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
