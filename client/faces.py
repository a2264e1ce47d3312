"""Image → faces → L2-normalised embedding, computed on this device and never sent anywhere.

Two backends share one interface:

- ``dlib`` (default, fully offline): HOG detector, 5-point landmarks and dlib's 128-D ResNet, from the
  ``dlib-bin`` and ``face_recognition_models`` packages;
- ``insightface``: an ArcFace ONNX model (512-D) run by onnxruntime, from a local model pack directory
  (detector and recognition model) or a single recognition ``.onnx`` file (then dlib detects the face and
  its 68-point model gives ArcFace's five alignment points). Nothing is ever downloaded.

Every embedding carries its backend's ``model_id`` (model facts: :mod:`veilface.protocol.face_models`);
templates of different models never compare. The face policy for enrolment and verification is
:func:`single_face` (:func:`embed_single`).

This module is the factory: :func:`load_embedder` imports a backend module only when it is chosen. What the
backends share (:class:`Face`, :class:`FaceEmbedder`, :class:`StagedFaceEmbedder`) lives in ``_face_base``
and is re-exported here.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from veilface.crypto import ConfigurationError, FaceError

from ._face_base import STAGES, Face, FaceEmbedder, StagedFaceEmbedder, StageTimer, unit_embedding
from ._images import ImageSource, decode_image, describe_source, read_image

__all__ = [
    "BACKENDS",
    "DEFAULT_MIN_FACE",
    "STAGES",
    "Face",
    "FaceEmbedder",
    "ImageSource",
    "StageTimer",
    "StagedFaceEmbedder",
    "decode_image",
    "embed_single",
    "load_embedder",
    "read_image",
    "single_face",
    "unit_embedding",
]

BACKENDS = ("dlib", "insightface")

#: Smallest face, in pixels across (the longer side of its box), accepted for enrolment and verification.
DEFAULT_MIN_FACE = 64


_cache: dict[tuple[str, str], StagedFaceEmbedder] = {}
_cache_lock = threading.Lock()


def load_embedder(backend: str = "dlib", *, model_path: str | Path | None = None) -> StagedFaceEmbedder:
    """The embedder for ``backend``, loaded once per process and model location.

    ``model_path`` is for ``insightface`` only: a model pack directory (default
    ``~/.insightface/models/buffalo_l``, or ``$VEILFACE_INSIGHTFACE_MODEL``) or one recognition ``.onnx``.
    Raises ``ModelNotFoundError`` saying what to put where when model files are missing.
    """
    if backend == "dlib":
        if model_path is not None:
            raise ConfigurationError(
                "the dlib backend uses the models of face_recognition_models; "
                "a model path applies to the insightface backend only"
            )
        key = ("dlib", "")
    elif backend == "insightface":
        from . import _insightface_backend

        key = ("insightface", str(_insightface_backend.resolve_model_path(model_path)))
    else:
        raise ConfigurationError(f"unknown face backend {backend!r} (choose one of {', '.join(BACKENDS)})")
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = _load(key)
            _cache[key] = embedder
    return embedder


def _load(key: tuple[str, str]) -> StagedFaceEmbedder:
    backend, location = key
    if backend == "dlib":
        from ._dlib_backend import DlibEmbedder

        return DlibEmbedder()
    from ._insightface_backend import load_insightface

    return load_insightface(Path(location))


def single_face(
    embedder: FaceEmbedder,
    image: ImageSource,
    *,
    take_largest: bool = False,
    min_face: int = DEFAULT_MIN_FACE,
) -> Face:
    """The one face in ``image`` under the enrolment and verification face policy.

    No face, several faces (unless ``take_largest``, which keeps the largest), or a face less than
    ``min_face`` pixels across raise ``FaceError``; unreadable input raises ``ImageError``.
    """
    name = describe_source(image)
    found = embedder.faces(image)
    if not found:
        raise FaceError(f"no face found in {name}", faces=0)
    if len(found) > 1 and not take_largest:
        raise FaceError(
            f"{len(found)} faces found in {name}; expected exactly one (or ask for the largest face)",
            faces=len(found),
        )
    face = found[0]
    if face.size < min_face:
        raise FaceError(
            f"the face in {name} is {face.size} px across, smaller than the minimum of {min_face} px",
            faces=len(found),
        )
    return face


def embed_single(
    embedder: FaceEmbedder,
    image: ImageSource,
    *,
    take_largest: bool = False,
    min_face: int = DEFAULT_MIN_FACE,
) -> np.ndarray:
    """The embedding of the one face in ``image``: :func:`single_face`'s policy, then its embedding."""
    return single_face(embedder, image, take_largest=take_largest, min_face=min_face).embedding
