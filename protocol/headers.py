"""Header names, their syntax, and the media types of the bodies that are not JSON.

``POST /v1/decisions`` (matcher to authority) carries the blinded envelope as its raw body and its
metadata in headers (see :class:`veilface.protocol.DecisionRequest`):

    Authorization: Bearer <VEILFACE_AUTHORITY_TOKEN>
    X-Request-Id:    fresh per request, 16-64 of [A-Za-z0-9_-]; a repeat is refused (409)
    X-Subject-Ref:   HMAC-SHA256 of the subject id under the matcher's pseudonym key (64 hex)
    X-Token-Id:      the operator token's id (32 hex), never the token
    X-Client-Nonce:  verification only, the client's nonce, signed into the record
    X-Probe-Sha256:  verification only, SHA-256 of the probe envelope, signed into the record

``POST /v1/subjects/{id}/verify`` (client to matcher) carries ``X-Client-Nonce``; the authority's answer to
``GET /v1/keys/signing`` names its CKKS key in ``X-Key-Id``.
"""

from __future__ import annotations

import re
import secrets

REQUEST_ID = "X-Request-Id"
SUBJECT_REF = "X-Subject-Ref"
TOKEN_ID = "X-Token-Id"  # noqa: S105 (a header name)
CLIENT_NONCE = "X-Client-Nonce"
PROBE_SHA256 = "X-Probe-Sha256"
KEY_ID = "X-Key-Id"
RETRY_AFTER = "Retry-After"

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
NONCE_SYNTAX = "16-128 characters of A-Z a-z 0-9 _ -"
SUBJECT_REF_PATTERN = re.compile(r"^[0-9a-f]{64}$")
TOKEN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

#: The syntax of every header above that carries an identifier.
HEADER_PATTERNS: dict[str, re.Pattern[str]] = {
    REQUEST_ID: REQUEST_ID_PATTERN,
    SUBJECT_REF: SUBJECT_REF_PATTERN,
    TOKEN_ID: TOKEN_ID_PATTERN,
    CLIENT_NONCE: NONCE_PATTERN,
    PROBE_SHA256: SHA256_PATTERN,
}

OCTET_STREAM = "application/octet-stream"
PEM_MEDIA_TYPE = "application/x-pem-file"


def well_formed(name: str, value: str | None) -> bool:
    """Whether header ``name`` (one of :data:`HEADER_PATTERNS`) is present and has its syntax."""
    return value is not None and HEADER_PATTERNS[name].match(value) is not None


def new_request_id() -> str:
    """A fresh ``X-Request-Id`` (32 hex characters)."""
    return secrets.token_hex(16)


def new_client_nonce() -> str:
    """A fresh ``X-Client-Nonce`` (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)
