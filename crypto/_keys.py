"""Key ceremony and key bundles (secret, evaluation, public) with signed public descriptions."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

import tenseal as ts
import tenseal.sealapi as sealapi

from ._errors import ConfigurationError, SignatureError
from ._presets import Preset, get_preset
from ._seal_io import SealFiles
from ._signing import SigningKey, VerifyKey, canonical_json

BUNDLE_FORMAT_VERSION = 1
#: How long the authority's signature over a public bundle vouches for it unless told otherwise (days).
DEFAULT_VALID_DAYS = 365


class Role(str, Enum):
    SECRET = "secret"  # noqa: S105 (a role name, not a password)
    EVALUATION = "evaluation"
    PUBLIC = "public"


@dataclass(frozen=True)
class KeyBundle:
    """A TenSEAL-serialised context plus what it is: role, preset, key_id, format version."""

    role: Role
    preset: str
    key_id: str
    context: bytes = field(repr=False)
    format_version: int = BUNDLE_FORMAT_VERSION
    # Evaluation bundle only: SEAL's seeded key-switching keys, stored beside the context (half the size
    # of TenSEAL's unseeded copies), for relinearisation and for complex conjugation (the norm check).
    relin_keys: bytes = field(default=b"", repr=False)
    conjugation_keys: bytes = field(default=b"", repr=False)

    def meta(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "role": self.role.value,
            "preset": self.preset,
            "key_id": self.key_id,
        }

    @classmethod
    def from_parts(
        cls,
        context: bytes,
        meta: dict[str, Any],
        *,
        role: Role,
        relin_keys: bytes = b"",
        conjugation_keys: bytes = b"",
    ) -> KeyBundle:
        """Rebuild a bundle from ``context.bin`` and ``meta.json``; checks the fields, not the keys."""
        if meta.get("format_version") != BUNDLE_FORMAT_VERSION:
            raise ConfigurationError(
                f"key bundle format version {meta.get('format_version')!r} is not supported "
                f"(expected {BUNDLE_FORMAT_VERSION})"
            )
        if meta.get("role") != role.value:
            raise ConfigurationError(f"expected a {role.value} bundle, got {meta.get('role')!r}")
        preset, key_id = meta.get("preset"), meta.get("key_id")
        if not isinstance(preset, str) or not isinstance(key_id, str):
            raise ConfigurationError("key bundle meta.json lacks preset or key_id")
        return cls(
            role=role,
            preset=preset,
            key_id=key_id,
            context=context,
            relin_keys=relin_keys,
            conjugation_keys=conjugation_keys,
        )

    @property
    def size(self) -> int:
        return len(self.context) + len(self.relin_keys) + len(self.conjugation_keys)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.context).hexdigest()


def expiry_after(days: float, *, now: datetime | None = None) -> str:
    """The moment ``days`` from ``now`` as an expiry is written: UTC, ISO 8601 to the second, with a Z."""
    moment = (now or datetime.now(timezone.utc)) + timedelta(days=days)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_expiry(value: str) -> datetime:
    """An expiry as written by :func:`expiry_after` (any ISO 8601 time with its offset); ValueError if not."""
    moment = datetime.fromisoformat(value.removesuffix("Z") + "+00:00" if value.endswith("Z") else value)
    if moment.tzinfo is None:
        raise ValueError("an expiry needs its UTC offset")
    return moment


@dataclass(frozen=True)
class PublicDescription:
    """What the authority signs about a public bundle; clients check it before encrypting a face.

    ``serial`` numbers the authority's key sets (1 from ``keys init``, one more per ``keys rotate``) and
    ``expires_at`` (UTC, ISO 8601) ends the signature's word for the bundle; ``keys extend`` re-signs a later
    expiry without new keys. A description signed before veilface had either has ``serial`` 0 and no expiry,
    and is signed (and verified) without both fields (docs/design.md §2.2).
    """

    key_id: str
    preset: str
    model_id: str
    dimension: int
    public_bundle_sha256: str
    format_version: int = BUNDLE_FORMAT_VERSION
    serial: int = 0
    expires_at: str | None = None

    @property
    def dated(self) -> bool:
        """Whether it carries a serial and an expiry (False: made before veilface signed them)."""
        return self.expires_at is not None

    def expires(self) -> datetime | None:
        return None if self.expires_at is None else parse_expiry(self.expires_at)

    def expired(self, now: datetime | None = None) -> bool:
        expires = self.expires()
        return expires is not None and (now or datetime.now(timezone.utc)) >= expires

    def extended(self, days: float, *, now: datetime | None = None) -> PublicDescription:
        """The same keys with a new expiry ``days`` from now; one made before serials becomes serial 1."""
        return dataclasses.replace(self, serial=max(self.serial, 1), expires_at=expiry_after(days, now=now))

    def to_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "format_version": self.format_version,
            "key_id": self.key_id,
            "preset": self.preset,
            "model_id": self.model_id,
            "dimension": self.dimension,
            "public_bundle_sha256": self.public_bundle_sha256,
        }
        if self.dated:
            fields.update(serial=self.serial, expires_at=self.expires_at)
        return fields

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PublicDescription:
        try:
            desc = cls(
                key_id=str(data["key_id"]),
                preset=str(data["preset"]),
                model_id=str(data["model_id"]),
                dimension=int(data["dimension"]),
                public_bundle_sha256=str(data["public_bundle_sha256"]),
                format_version=int(data["format_version"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int() of an infinite float
            raise SignatureError("public bundle description is incomplete") from None
        if "serial" not in data and "expires_at" not in data:
            return desc
        serial, expires_at = data.get("serial"), data.get("expires_at")
        if type(serial) is not int or serial < 1 or not isinstance(expires_at, str):
            raise SignatureError("public bundle description has an invalid serial or expiry")
        try:
            parse_expiry(expires_at)
        except ValueError:
            raise SignatureError("public bundle description has an invalid serial or expiry") from None
        return dataclasses.replace(desc, serial=serial, expires_at=expires_at)

    def sign(self, key: SigningKey) -> str:
        return base64.b64encode(key.sign(canonical_json(self.to_dict()))).decode()

    def verify(self, signature: str, key: VerifyKey) -> None:
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("public bundle signature is not base64") from None
        key.verify(raw, canonical_json(self.to_dict()), what="public bundle")


def verify_public_bundle(
    bundle: KeyBundle, description: PublicDescription, signature: str, authority_key: VerifyKey
) -> None:
    """Refuse a public bundle unless the authority signed exactly these bytes, key and model."""
    description.verify(signature, authority_key)
    if description.public_bundle_sha256 != bundle.sha256:
        raise SignatureError("public bundle bytes differ from the ones the authority signed")
    if description.key_id != bundle.key_id or description.preset != bundle.preset:
        raise SignatureError("public bundle key_id or preset differs from the signed description")


@dataclass(frozen=True)
class KeySet:
    """Everything a key ceremony produces."""

    secret: KeyBundle
    evaluation: KeyBundle
    public: KeyBundle
    signing_key: SigningKey
    description: PublicDescription
    signature: str

    @property
    def key_id(self) -> str:
        return self.public.key_id


_seal_files = SealFiles()


def compute_key_id(context: ts.Context) -> str:
    """key_id: the first 16 bytes (hex) of SHA-256 over the public key's uncompressed SEAL body."""
    if not context.has_public_key():
        raise ConfigurationError("context has no public key")
    raw = _seal_files.uncompressed(_seal_files.save(context.public_key().data))
    return hashlib.sha256(raw[16:]).hexdigest()[:32]


def _check_security(preset: Preset, allow_insecure: bool) -> None:
    """Let SEAL itself enforce the 128-bit table, as a second check beside the preset's own."""
    parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(preset.poly_modulus_degree)
    parms.set_coeff_modulus(sealapi.CoeffModulus.Create(preset.poly_modulus_degree, list(preset.coeff_mod_bit_sizes)))
    context = sealapi.SEALContext(parms, True, sealapi.SEC_LEVEL_TYPE.TC128)
    if not context.parameters_set() and not allow_insecure:
        raise ConfigurationError(
            f"preset {preset.name}: SEAL refuses it at 128-bit security ({context.parameters_error_message()})"
        )


def make_context(preset: Preset, *, allow_insecure: bool = False) -> ts.Context:
    preset.check(allow_insecure=allow_insecure)
    _check_security(preset, allow_insecure)
    try:
        context = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=preset.poly_modulus_degree,
            coeff_mod_bit_sizes=list(preset.coeff_mod_bit_sizes),
            n_threads=1,
        )
    except ValueError:
        # TenSEAL builds only 128-bit secure parameters, whatever the caller allowed.
        raise ConfigurationError(f"preset {preset.name}: TenSEAL refuses these parameters") from None
    context.global_scale = 2.0**preset.scale_bits
    return context


def key_ceremony(
    preset_name: str,
    *,
    model_id: str,
    dimension: int,
    allow_insecure: bool = False,
    serial: int = 1,
    valid_days: float = DEFAULT_VALID_DAYS,
) -> KeySet:
    """Generate a CKKS key set and the authority's Ed25519 key; sign the public bundle's description, which
    names the key set's ``serial`` and expires ``valid_days`` from now."""
    if serial < 1 or valid_days <= 0:
        raise ConfigurationError("a key set's serial starts at 1 and its bundle must be valid for some time")
    preset = get_preset(preset_name, allow_insecure=allow_insecure)
    if dimension < 1 or dimension > preset.slots:
        raise ConfigurationError(f"dimension {dimension} does not fit the {preset.slots} slots of {preset.name}")
    context = make_context(preset, allow_insecure=allow_insecure)
    key_id = compute_key_id(context)
    secret = KeyBundle(Role.SECRET, preset.name, key_id, context.serialize(save_secret_key=True))

    seal = context.seal_context().data
    generator = sealapi.KeyGenerator(seal, context.secret_key().data)
    relin_keys = _seal_files.save(generator.create_relin_keys())
    conjugation = 2 * preset.poly_modulus_degree - 1  # the Galois element of complex conjugation
    conjugation_keys = _seal_files.save(generator.create_galois_keys([conjugation]))

    public_ctx = context.copy()
    public_ctx.make_context_public(generate_galois_keys=False, generate_relin_keys=False)
    public_context = public_ctx.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    evaluation = KeyBundle(
        Role.EVALUATION,
        preset.name,
        key_id,
        public_context,
        relin_keys=relin_keys,
        conjugation_keys=conjugation_keys,
    )
    public = KeyBundle(Role.PUBLIC, preset.name, key_id, public_context)
    signing_key = SigningKey.generate()
    description = PublicDescription(
        key_id=key_id,
        preset=preset.name,
        model_id=model_id,
        dimension=dimension,
        public_bundle_sha256=public.sha256,
        serial=serial,
        expires_at=expiry_after(valid_days),
    )
    return KeySet(secret, evaluation, public, signing_key, description, description.sign(signing_key))


def open_context(bundle: KeyBundle, *, allow_insecure: bool = False) -> tuple[ts.Context, Preset]:
    """Parse a bundle's context, check its role's rules (no secret key outside the authority), key_id."""
    preset = get_preset(bundle.preset, allow_insecure=allow_insecure)
    try:
        context = ts.context_from(bundle.context)
    except Exception:  # TenSEAL raises bare ValueError/RuntimeError from C++ for malformed bytes
        raise ConfigurationError(f"{bundle.role.value} bundle: context.bin does not parse") from None
    if bundle.role is Role.SECRET:
        if not context.is_private():
            raise ConfigurationError("secret bundle holds no secret key")
    elif context.is_private() or context.has_secret_key():
        raise ConfigurationError(
            f"{bundle.role.value} bundle holds a secret key; only the authority may load one "
            "(use DIR/evaluation for the matcher and DIR/public for clients)"
        )
    if bundle.role is not Role.SECRET and context.has_galois_keys():
        raise ConfigurationError(f"{bundle.role.value} bundle holds rotation keys, which veilface never issues")
    if bundle.role is Role.EVALUATION and not (bundle.relin_keys and bundle.conjugation_keys):
        raise ConfigurationError("evaluation bundle lacks relinearisation or conjugation keys")
    parms = context.seal_context().data.first_context_data().parms()
    bits = tuple(m.bit_count() for m in parms.coeff_modulus())
    if parms.poly_modulus_degree() != preset.poly_modulus_degree or bits != preset.coeff_mod_bit_sizes[:-1]:
        raise ConfigurationError(f"{bundle.role.value} bundle's parameters do not match preset {preset.name}")
    if compute_key_id(context) != bundle.key_id:
        raise ConfigurationError(f"{bundle.role.value} bundle's key_id does not match its public key")
    context.global_scale = 2.0**preset.scale_bits
    return context, preset
