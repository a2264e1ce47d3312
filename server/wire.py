"""The matcher-to-authority wire format.

``POST /v1/decisions`` carries the blinded envelope as the raw body (``application/octet-stream``, about
98 KB for a verification) and its metadata in headers; the answer is a small JSON object.

    Authorization: Bearer <VEILFACE_AUTHORITY_TOKEN>
    X-Request-Id:    fresh per request, 16-64 of [A-Za-z0-9_-]; a repeat is refused (409)
    X-Subject-Ref:   HMAC-SHA256 of the subject id under the matcher's pseudonym key (64 hex)
    X-Token-Id:      the operator token's id (32 hex), never the token
    X-Client-Nonce:  verification only, the client's nonce, signed into the record
    X-Probe-Sha256:  verification only, SHA-256 of the probe envelope, signed into the record

Answer: ``{"request_id", "purpose": "enrol"|"verify", "outcome", "record": {signed record} | null}``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from veilface.crypto import Outcome, Purpose

REQUEST_ID = "X-Request-Id"
SUBJECT_REF = "X-Subject-Ref"
TOKEN_ID = "X-Token-Id"  # noqa: S105 (a header name)
CLIENT_NONCE = "X-Client-Nonce"
PROBE_SHA256 = "X-Probe-Sha256"

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
SUBJECT_REF_PATTERN = re.compile(r"^[0-9a-f]{64}$")
TOKEN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class DecisionAnswer(BaseModel):
    request_id: str
    purpose: Purpose
    outcome: Outcome
    record: dict[str, Any] | None
