"""The JSON bodies both services exchange, and the limits on the raw ciphertext bodies.

Client and matcher: :class:`PublicKeysAnswer` (``GET /v1/keys/public``), :class:`SubjectMeta` (the answer
to enrolling a template and to reading a subject) and the signed
:class:`~veilface.crypto.DecisionRecord` (the answer to a verification). Matcher and authority:
:class:`DecisionRequest` (the headers of ``POST /v1/decisions``) and :class:`DecisionAnswer`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass

from veilface.crypto import (
    ENVELOPE_OVERHEAD,
    KeyBundle,
    Outcome,
    PublicDescription,
    Purpose,
    Role,
    SignatureError,
)
from veilface.protocol import headers


def embedding_body_limit(ciphertext_bytes: int) -> int:
    """The largest body of an enrolment or a verification: one encrypted embedding in its envelope."""
    return ciphertext_bytes + ENVELOPE_OVERHEAD


def blinded_body_limit(ciphertext_bytes: int) -> int:
    """The largest body of ``POST /v1/decisions``: a verification's blinded values (two norm checks and the
    score) in their envelope."""
    return Purpose.VERIFY.checks * ciphertext_bytes + ENVELOPE_OVERHEAD


class PublicKeysAnswer(BaseModel):
    """``GET /v1/keys/public``: the public bundle and the authority's signed description of it."""

    key_id: str
    preset: str
    model_id: str
    dimension: int
    description: dict[str, Any]
    signature: str
    bundle: str

    @classmethod
    def of(cls, public: KeyBundle, description: PublicDescription, signature: str) -> PublicKeysAnswer:
        return cls(
            key_id=description.key_id,
            preset=description.preset,
            model_id=description.model_id,
            dimension=description.dimension,
            description=description.to_dict(),
            signature=signature,
            bundle=base64.b64encode(public.context).decode(),
        )

    def public_bundle(self) -> tuple[KeyBundle, PublicDescription]:
        """The bundle and its description as sent, not yet checked against the signature
        (:func:`~veilface.crypto.verify_public_bundle` does that)."""
        try:
            context = base64.b64decode(self.bundle, validate=True)
            description = PublicDescription.from_dict(self.description)
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise SignatureError("the matcher's public key response is malformed") from None
        return KeyBundle(Role.PUBLIC, description.preset, description.key_id, context), description


@dataclass(frozen=True)
class SubjectMeta:
    """An enrolled subject: which key and model its template was made under, and when. Never the template.

    A (validating) dataclass, as the matcher's store builds one per row and ``dataclasses.asdict`` reads one.
    """

    subject_id: str
    key_id: str
    model_id: str
    created_at: str
    updated_at: str

    @classmethod
    def from_json(cls, body: object) -> SubjectMeta:
        """A subject's metadata from a decoded JSON body; pydantic's ValidationError if it is not one."""
        return _SUBJECT_META.validate_python(body)


_SUBJECT_META = TypeAdapter(SubjectMeta)


def _header_field(name: str, *, required: bool = True) -> Any:
    pattern = headers.HEADER_PATTERNS[name].pattern
    return Field(alias=name, pattern=pattern) if required else Field(default=None, alias=name, pattern=pattern)


class DecisionRequest(BaseModel):
    """The headers of ``POST /v1/decisions`` (the body is the blinded envelope). A verification also carries
    the client's nonce and the probe's hash, which the authority signs into the record."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    request_id: str = _header_field(headers.REQUEST_ID)
    subject_ref: str = _header_field(headers.SUBJECT_REF)
    token_id: str = _header_field(headers.TOKEN_ID)
    client_nonce: str | None = _header_field(headers.CLIENT_NONCE, required=False)
    probe_sha256: str | None = _header_field(headers.PROBE_SHA256, required=False)

    def as_headers(self) -> dict[str, str]:
        return {"Content-Type": headers.OCTET_STREAM, **self.model_dump(by_alias=True, exclude_none=True)}


class DecisionAnswer(BaseModel):
    """The authority's answer: the outcome, and for a verification's match or no-match the signed record
    (:meth:`veilface.crypto.DecisionRecord.from_dict` parses it)."""

    request_id: str
    purpose: Purpose
    outcome: Outcome
    record: dict[str, Any] | None


class Health(BaseModel):
    """``GET /healthz``: the process answers."""

    status: str


class MatcherReadiness(BaseModel):
    """The matcher's ``GET /readyz`` (503 unless both are true)."""

    database: bool
    authority: bool


class AuthorityReadiness(BaseModel):
    """The authority's ``GET /readyz`` (503 unless true)."""

    database: bool
