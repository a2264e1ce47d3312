"""The exception tree shared by every part of veilface.

    VeilfaceError                   root: catch this to catch everything veilface raises on purpose
    ├── ConfigurationError          unsafe or inconsistent set-up (insecure preset, secret key in the matcher)
    ├── InvalidEmbeddingError       an embedding that is not 1-D, finite, non-zero, of the expected dimension
    ├── InvalidCiphertextError      bytes that do not parse, or are for another key, model, dimension, preset
    ├── SignatureError              a bundle or decision record whose signature does not verify
    ├── ImageError                  (client) unreadable, corrupt or non-image input
    ├── FaceError                   (client) no face, several faces, face too small
    ├── ModelNotFoundError          (client) model files missing; says what to put where
    └── ServiceError                (client/server) an HTTP peer answered with an error

Messages name what was wrong and what to do; they never contain an embedding, a score or key material.
"""

from __future__ import annotations


class VeilfaceError(Exception):
    """Root of every error veilface raises deliberately."""

    exit_code: int = 3

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(VeilfaceError):
    """Keys, presets or settings that are unsafe or do not fit together."""


class InvalidEmbeddingError(VeilfaceError):
    """An embedding the client refuses to encrypt."""


class InvalidCiphertextError(VeilfaceError):
    """Ciphertext or envelope bytes that cannot be used under this deployment."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SignatureError(VeilfaceError):
    """A signature that does not verify under the configured authority key."""


class ImageError(VeilfaceError):
    """Input that is not a readable image."""


class FaceError(VeilfaceError):
    """An image whose faces do not satisfy the face policy."""

    def __init__(self, message: str, *, faces: int = 0) -> None:
        super().__init__(message)
        self.faces = faces


class ModelNotFoundError(VeilfaceError):
    """Model files that are not where they are expected."""


class ServiceError(VeilfaceError):
    """An HTTP peer answered with an error (problem+json)."""

    def __init__(self, message: str, *, status: int = 0, problem_type: str = "about:blank") -> None:
        super().__init__(message)
        self.status = status
        self.problem_type = problem_type
