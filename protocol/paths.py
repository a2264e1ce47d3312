"""URL paths of the matcher and the authority, and how a subject id goes into one.

Route templates use FastAPI's ``{subject_id}`` syntax; :func:`subject_path` fills one in for a client.
"""

from __future__ import annotations

import urllib.parse

# Both services, without a token.
HEALTHZ = "/healthz"
READYZ = "/readyz"
# Both services, behind a token (an operator's at the matcher, the matcher's at the authority).
METRICS = "/metrics"

# The matcher.
PUBLIC_KEYS = "/v1/keys/public"
SUBJECT = "/v1/subjects/{subject_id}"
SUBJECT_TEMPLATE = SUBJECT + "/template"
SUBJECT_VERIFY = SUBJECT + "/verify"

# The authority.
SIGNING_KEY = "/v1/keys/signing"
DECISIONS = "/v1/decisions"

#: What a subject id may be; the matcher refuses any other (422).
SUBJECT_ID_PATTERN = r"^[A-Za-z0-9._@-]{1,128}$"
SUBJECT_ID_SYNTAX = "1-128 characters of A-Z a-z 0-9 . _ @ -"


def subject_path(route: str, subject_id: str) -> str:
    """``route`` (:data:`SUBJECT`, :data:`SUBJECT_TEMPLATE` or :data:`SUBJECT_VERIFY`) for one subject."""
    quoted = urllib.parse.quote(subject_id, safe="")
    # "." and ".." are valid subject ids, but as literal path segments HTTP clients resolve them away.
    if quoted in (".", ".."):
        quoted = quoted.replace(".", "%2E")
    return route.format(subject_id=quoted)
