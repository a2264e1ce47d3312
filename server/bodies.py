"""Raw ciphertext bodies: size (413) and content type (415) checked before a byte is buffered past the limit."""

from __future__ import annotations

from fastapi import Request

from veilface.protocol import ProblemType
from veilface.protocol.headers import OCTET_STREAM
from veilface.server.problems import Problem

# OpenAPI for routes whose body is raw bytes (FastAPI cannot infer it, and fuzzers read it).
BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
    }
}


def too_large(limit: int) -> Problem:
    return Problem(ProblemType.PAYLOAD_TOO_LARGE, f"the body may hold at most {limit} bytes")


def check_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


def check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != OCTET_STREAM:
        raise Problem(ProblemType.UNSUPPORTED_MEDIA_TYPE, f"send the ciphertext as {OCTET_STREAM}")


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing it (413) as soon as it exceeds ``limit`` whatever Content-Length claimed."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_ciphertext_body(request: Request, limit: int) -> bytes:
    """Checks in the documented order: size (413), content type (415), then reads within the limit."""
    check_declared_size(request, limit)
    check_content_type(request)
    return await read_limited(request, limit)
