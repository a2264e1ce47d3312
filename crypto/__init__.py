"""veilface.crypto: the CKKS template-protection core shared by client, matcher and authority.

Pure code: bytes in, bytes out; no network and no file paths. The matcher's cipher refuses any bundle
that holds a secret key; only the authority's cipher decrypts, and it reveals one bit per check.
"""

from ._ckks import CkksAuthorityCipher, CkksClientCipher, CkksMatcherCipher, probe_digest
from ._decision import DecisionRecord, sign_decision, utc_now, verify_decision
from ._envelope import ENVELOPE_OVERHEAD, Envelope, EnvelopeKind
from ._errors import (
    ConfigurationError,
    FaceError,
    ImageError,
    InvalidCiphertextError,
    InvalidEmbeddingError,
    ModelNotFoundError,
    ServiceError,
    SignatureError,
    VeilfaceError,
)
from ._keys import (
    BUNDLE_FORMAT_VERSION,
    DEFAULT_VALID_DAYS,
    KeyBundle,
    KeySet,
    PublicDescription,
    Role,
    key_ceremony,
    verify_public_bundle,
)
from ._plain import PlaintextAuthorityCipher, PlaintextClientCipher, PlaintextMatcherCipher
from ._presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from ._protocol import (
    NORM_TOLERANCE,
    AuthorityCipher,
    ClientCipher,
    MatcherCipher,
    Outcome,
    Purpose,
    prepare_embedding,
)
from ._signing import SigningKey, VerifyKey

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "DEFAULT_PRESET",
    "DEFAULT_VALID_DAYS",
    "ENVELOPE_OVERHEAD",
    "NORM_TOLERANCE",
    "PRESETS",
    "AuthorityCipher",
    "CkksAuthorityCipher",
    "CkksClientCipher",
    "CkksMatcherCipher",
    "ClientCipher",
    "ConfigurationError",
    "DecisionRecord",
    "Envelope",
    "EnvelopeKind",
    "FaceError",
    "ImageError",
    "InvalidCiphertextError",
    "InvalidEmbeddingError",
    "KeyBundle",
    "KeySet",
    "MatcherCipher",
    "ModelNotFoundError",
    "Outcome",
    "PlaintextAuthorityCipher",
    "PlaintextClientCipher",
    "PlaintextMatcherCipher",
    "Preset",
    "PublicDescription",
    "Purpose",
    "Role",
    "ServiceError",
    "SignatureError",
    "SigningKey",
    "VeilfaceError",
    "VerifyKey",
    "get_preset",
    "key_ceremony",
    "prepare_embedding",
    "probe_digest",
    "sign_decision",
    "utc_now",
    "verify_decision",
    "verify_public_bundle",
]
