"""Signed one-bit decision records."""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any, get_type_hints

from ._errors import SignatureError
from ._signing import SigningKey, VerifyKey, canonical_json

# The fields the authority signs. ``subject_id`` is filled in by the matcher: the authority only ever sees
# ``subject_ref``, a keyed hash of it, and signs that.
SIGNED_FIELDS = ("request_id", "subject_ref", "match", "key_id", "issued_at", "client_nonce", "probe_sha256")


@dataclass(frozen=True)
class DecisionRecord:
    request_id: str
    subject_id: str
    subject_ref: str
    match: bool
    key_id: str
    issued_at: str
    client_nonce: str
    probe_sha256: str
    signature: str

    def signed_message(self) -> bytes:
        return canonical_json({name: getattr(self, name) for name in SIGNED_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_subject(self, subject_id: str) -> DecisionRecord:
        return replace(self, subject_id=subject_id)

    @classmethod
    def from_dict(cls, data: Any) -> DecisionRecord:
        """Parse a record strictly: every field present with the right type, nothing else trusted."""
        if not isinstance(data, dict):
            raise SignatureError("decision record is not an object")
        values: dict[str, Any] = {}
        for name, kind in _FIELD_TYPES.items():
            value = data.get(name)
            if not isinstance(value, kind):
                raise SignatureError(f"decision record field {name!r} is missing or not {_TYPE_NAMES[kind]}")
            values[name] = value
        return cls(**values)


_FIELD_TYPES: dict[str, type] = get_type_hints(DecisionRecord)
_TYPE_NAMES = {str: "a string", bool: "a boolean"}


def utc_now() -> str:
    """Now, as every veilface timestamp is written: UTC, ISO 8601 with milliseconds and a Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sign_decision(
    key: SigningKey,
    *,
    request_id: str,
    subject_ref: str,
    match: bool,
    key_id: str,
    client_nonce: str,
    probe_sha256: str,
    issued_at: str | None = None,
) -> DecisionRecord:
    unsigned = DecisionRecord(
        request_id=request_id,
        subject_id="",
        subject_ref=subject_ref,
        match=match,
        key_id=key_id,
        issued_at=issued_at or utc_now(),
        client_nonce=client_nonce,
        probe_sha256=probe_sha256,
        signature="",
    )
    signature = base64.b64encode(key.sign(unsigned.signed_message())).decode()
    return replace(unsigned, signature=signature)


def verify_decision(
    record: DecisionRecord,
    key: VerifyKey,
    *,
    client_nonce: str | None = None,
    probe_sha256: str | None = None,
    key_id: str | None = None,
) -> None:
    """Check the signature, and, when given, that the record answers this client's own request."""
    try:
        signature = base64.b64decode(record.signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("decision signature is not base64") from None
    key.verify(signature, record.signed_message(), what="decision")
    if client_nonce is not None and record.client_nonce != client_nonce:
        raise SignatureError("decision answers another request (client nonce differs)")
    if probe_sha256 is not None and record.probe_sha256 != probe_sha256:
        raise SignatureError("decision is about another probe (probe hash differs)")
    if key_id is not None and record.key_id != key_id:
        raise SignatureError("decision was made under another key")
