"""Key directories on disk: ``DIR/secret``, ``DIR/evaluation``, ``DIR/public``.

Each holds ``context.bin`` (the TenSEAL-serialised context) and ``meta.json``; ``DIR/secret/signing.key``
and ``DIR/public/signing.pub`` hold the authority's Ed25519 key pair (PEM). Secret files are mode 0600.
``DIR/public/meta.json`` also holds the authority's signed description of the public bundle, which
:func:`write_public_description` replaces (``veilface keys extend``: a later expiry, the same keys).
The matcher reads only ``evaluation`` and ``public``; this module never hands it anything else.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veilface.crypto import (
    ConfigurationError,
    KeyBundle,
    KeySet,
    PublicDescription,
    Role,
    SignatureError,
    SigningKey,
    VerifyKey,
    verify_public_bundle,
)

CONTEXT_FILE = "context.bin"
RELIN_FILE = "relin.bin"
CONJUGATION_FILE = "conjugation.bin"
META_FILE = "meta.json"
SIGNING_KEY_FILE = "signing.key"
SIGNING_PUB_FILE = "signing.pub"


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _json(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


class KeysExistError(ConfigurationError):
    """The target directory already holds keys; nothing was overwritten."""


def write_keyset(directory: Path, keyset: KeySet) -> None:
    """Write a fresh key set; raises KeysExistError rather than overwrite any key.

    Each role is written into a private staging directory and renamed into place only once complete, and a
    failure part-way removes what was staged: a crash leaves either a whole role directory or none.
    """
    directory = Path(directory)
    existing = [role.value for role in Role if (directory / role.value).exists()]
    if existing:
        raise KeysExistError(f"{directory} already holds keys ({', '.join(existing)}); refusing to overwrite them")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".keys-staging-", dir=directory))
    except OSError as exc:
        raise ConfigurationError(f"cannot create key directory {directory}: {exc.strerror}") from None
    try:
        _stage(staging, keyset)
        # Public and evaluation first: a key directory with secret/ but no public/ is never left behind.
        for role in (Role.PUBLIC, Role.EVALUATION, Role.SECRET):
            os.rename(staging / role.value, directory / role.value)
    except OSError as exc:
        raise ConfigurationError(f"cannot write keys to {directory}: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage(staging: Path, keyset: KeySet) -> None:
    secret_dir = staging / Role.SECRET.value
    secret_dir.mkdir(mode=0o700)
    _write(secret_dir / CONTEXT_FILE, keyset.secret.context, 0o600)
    _write(secret_dir / META_FILE, _json(keyset.secret.meta()), 0o600)
    _write(secret_dir / SIGNING_KEY_FILE, keyset.signing_key.to_pem(), 0o600)
    for bundle in (keyset.evaluation, keyset.public):
        sub = staging / bundle.role.value
        sub.mkdir(mode=0o755)
        meta = bundle.meta()
        if bundle.role is Role.PUBLIC:
            meta.update(description=keyset.description.to_dict(), signature=keyset.signature)
        _write(sub / CONTEXT_FILE, bundle.context, 0o644)
        _write(sub / META_FILE, _json(meta), 0o644)
        if bundle.role is Role.EVALUATION:
            _write(sub / RELIN_FILE, bundle.relin_keys, 0o644)
            _write(sub / CONJUGATION_FILE, bundle.conjugation_keys, 0o644)
    _write(staging / Role.PUBLIC.value / SIGNING_PUB_FILE, keyset.signing_key.verify_key.to_pem(), 0o644)


def _read_meta(sub: Path) -> dict[str, Any]:
    try:
        meta = json.loads((sub / META_FILE).read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"{sub / META_FILE} is missing; run 'veilface keys init DIR' first") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigurationError(f"{sub / META_FILE} is not valid JSON") from None
    if not isinstance(meta, dict):
        raise ConfigurationError(f"{sub / META_FILE} is not a JSON object")
    return meta


def read_bundle(directory: Path, role: Role) -> KeyBundle:
    sub = Path(directory) / role.value
    try:
        context = (sub / CONTEXT_FILE).read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"{sub / CONTEXT_FILE} is missing; run 'veilface keys init DIR' first") from None
    extras: dict[str, bytes] = {}
    if role is Role.EVALUATION:
        for name, filename in (("relin_keys", RELIN_FILE), ("conjugation_keys", CONJUGATION_FILE)):
            try:
                extras[name] = (sub / filename).read_bytes()
            except FileNotFoundError:
                raise ConfigurationError(f"{sub / filename} is missing; the evaluation bundle is incomplete") from None
    return KeyBundle.from_parts(context, _read_meta(sub), role=role, **extras)


def read_public_description(directory: Path) -> tuple[PublicDescription, str]:
    """The signed description of the public bundle and the authority's signature over it."""
    meta = _read_meta(Path(directory) / Role.PUBLIC.value)
    description, signature = meta.get("description"), meta.get("signature")
    if not isinstance(description, dict) or not isinstance(signature, str):
        raise ConfigurationError("public/meta.json lacks the authority's signed description")
    try:
        return PublicDescription.from_dict(description), signature
    except SignatureError as exc:
        raise ConfigurationError(f"public/meta.json: {exc.message}") from None


def write_public_description(directory: Path, description: PublicDescription, signature: str) -> None:
    """Replace the signed description in ``DIR/public/meta.json`` (the rest of the file is kept), atomically:
    a crash leaves the old file or the new one, never a mix."""
    sub = Path(directory) / Role.PUBLIC.value
    meta = _read_meta(sub)
    meta.update(description=description.to_dict(), signature=signature)
    temporary = sub / f".{META_FILE}.{os.getpid()}.tmp"
    try:
        temporary.unlink(missing_ok=True)
        _write(temporary, _json(meta), 0o644)
        os.replace(temporary, sub / META_FILE)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write {sub / META_FILE}: {exc.strerror}") from None


def read_signing_key(directory: Path) -> SigningKey:
    path = Path(directory) / Role.SECRET.value / SIGNING_KEY_FILE
    try:
        return SigningKey.from_pem(path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"{path} is missing") from None


def read_verify_key(path: Path) -> VerifyKey:
    try:
        return VerifyKey.from_pem(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"authority key {path} does not exist") from None


@dataclass(frozen=True)
class MatcherKeys:
    """What the matcher may hold: the evaluation bundle, the public bundle, its signed description and the
    authority's verification key."""

    evaluation: KeyBundle
    public: KeyBundle
    description: PublicDescription
    signature: str
    verify_key: VerifyKey


def load_matcher_keys(directory: Path) -> MatcherKeys:
    """Refuse a directory that holds the secret bundle: the matcher host should never have received it."""
    directory = Path(directory)
    if (directory / Role.SECRET.value).exists():
        raise ConfigurationError(
            f"{directory} contains {Role.SECRET.value}/: the matcher must never hold the secret key; give it a "
            "directory with copies of only evaluation/ and public/"
        )
    public = read_bundle(directory, Role.PUBLIC)
    description, signature = read_public_description(directory)
    verify_key = read_verify_key(directory / Role.PUBLIC.value / SIGNING_PUB_FILE)
    try:
        verify_public_bundle(public, description, signature, verify_key)
    except SignatureError as exc:
        raise ConfigurationError(f"public bundle: {exc.message}") from None
    if description.expired():
        # Every client would refuse the bundle this matcher serves.
        raise ConfigurationError(
            f"the authority's signature over the public bundle expired at {description.expires_at}; run "
            f"'veilface keys extend KEYS' at the authority and copy KEYS/public/{META_FILE} to "
            f"{directory / Role.PUBLIC.value}"
        )
    evaluation = read_bundle(directory, Role.EVALUATION)
    if evaluation.key_id != public.key_id:
        raise ConfigurationError("evaluation and public bundles come from different key ceremonies")
    return MatcherKeys(evaluation, public, description, signature, verify_key)


@dataclass(frozen=True)
class AuthorityKeys:
    secret: KeyBundle
    signing_key: SigningKey


def load_authority_keys(directory: Path) -> AuthorityKeys:
    return AuthorityKeys(read_bundle(directory, Role.SECRET), read_signing_key(directory))
