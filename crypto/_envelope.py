"""A small versioned envelope around ciphertext bytes.

Layout: ``b"VFCT"`` | format version (u8) | kind (u8) | header length (u16, big-endian) | header (UTF-8
JSON) | payload. The header names the key, model, dimension, preset and scheme, so bytes made under
another deployment are refused before any homomorphic work.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ._errors import InvalidCiphertextError

MAGIC = b"VFCT"
ENVELOPE_VERSION = 1
_PREFIX = struct.Struct(">4sBBH")
MAX_HEADER = 1024
#: The most bytes an envelope adds around its payload: the prefix and the largest header.
ENVELOPE_OVERHEAD = _PREFIX.size + MAX_HEADER


class EnvelopeKind(IntEnum):
    EMBEDDING = 1  # an encrypted template or probe
    BLINDED = 2  # blinded comparison results, matcher -> authority


@dataclass(frozen=True)
class Envelope:
    kind: EnvelopeKind
    header: dict[str, Any]
    payload: bytes

    def to_bytes(self) -> bytes:
        header = json.dumps(self.header, sort_keys=True, separators=(",", ":")).encode()
        return _PREFIX.pack(MAGIC, ENVELOPE_VERSION, int(self.kind), len(header)) + header + self.payload

    @classmethod
    def from_bytes(cls, data: bytes, *, kind: EnvelopeKind) -> Envelope:
        if len(data) < _PREFIX.size:
            raise InvalidCiphertextError("envelope is truncated", field="envelope")
        magic, version, raw_kind, header_len = _PREFIX.unpack_from(data)
        if magic != MAGIC:
            raise InvalidCiphertextError("not a veilface ciphertext envelope", field="envelope")
        if version != ENVELOPE_VERSION:
            raise InvalidCiphertextError(
                f"envelope format version is not supported (expected {ENVELOPE_VERSION})", field="format_version"
            )
        if raw_kind != int(kind):
            raise InvalidCiphertextError(f"envelope is not of kind {kind.name.lower()}", field="kind")
        end = _PREFIX.size + header_len
        if header_len > MAX_HEADER or end > len(data):
            raise InvalidCiphertextError("envelope header is truncated or too long", field="envelope")
        try:
            header = json.loads(data[_PREFIX.size : end].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidCiphertextError("envelope header is not valid JSON", field="envelope") from None
        if not isinstance(header, dict):
            raise InvalidCiphertextError("envelope header is not an object", field="envelope")
        return cls(kind=kind, header=header, payload=data[end:])

    def expect(self, *, extra: tuple[str, ...] = (), **expected: Any) -> None:
        """Refuse the envelope if a header field differs from the deployment's value, or is unknown.

        Messages name the field only: they reach the sender as problem details, which never echo a submitted
        value or the deployment's key id."""
        for name, value in expected.items():
            if self.header.get(name) != value:
                raise InvalidCiphertextError(f"ciphertext {name} differs from this deployment's", field=name)
        unknown = set(self.header) - set(expected) - set(extra)
        if unknown:
            raise InvalidCiphertextError(
                f"envelope header has unknown fields ({len(unknown)}); expected only {', '.join(sorted(expected))}",
                field="envelope",
            )
