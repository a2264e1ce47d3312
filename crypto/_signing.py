"""Ed25519 signing keys of the authority, and canonical bytes to sign."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._errors import ConfigurationError, SignatureError


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _read_pem(load: Callable[[bytes], object], data: bytes, not_pem: str) -> object:
    """The key ``load`` reads from the PEM ``data``; ConfigurationError ``not_pem`` when it cannot."""
    try:
        return load(data)
    except (ValueError, TypeError):
        raise ConfigurationError(not_pem) from None


class SigningKey:
    """The authority's Ed25519 private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        load = partial(serialization.load_pem_private_key, password=None)
        key = _read_pem(load, data, "signing key file is not a PEM Ed25519 private key")
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError("signing key is not an Ed25519 key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self._key.public_key())

    def __repr__(self) -> str:
        return f"SigningKey(fingerprint={self.verify_key.fingerprint})"


class VerifyKey:
    """The authority's Ed25519 public key, as clients and the matcher hold it."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_pem(cls, data: bytes) -> VerifyKey:
        key = _read_pem(serialization.load_pem_public_key, data, "authority key is not a PEM Ed25519 public key")
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigurationError("authority key is not an Ed25519 key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw public key, hex in groups of four, like SSH's but readable aloud."""
        raw = self._key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        digest = hashlib.sha256(raw).hexdigest()
        return "SHA256:" + ":".join(digest[i : i + 4] for i in range(0, 32, 4))

    def verify(self, signature: bytes, message: bytes, *, what: str) -> None:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise SignatureError(f"{what} signature does not verify under the configured authority key") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and self.to_pem() == other.to_pem()

    def __hash__(self) -> int:
        return hash(self.to_pem())

    def __repr__(self) -> str:
        return f"VerifyKey({self.fingerprint})"
