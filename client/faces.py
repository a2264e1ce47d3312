"""Image → faces → L2-normalised embedding, computed on this device and never sent anywhere.

Two backends share one interface:

- ``dlib`` (default, fully offline): HOG detector, 5-point landmarks and dlib's 128-D ResNet, from the
  ``dlib-bin`` and ``face_recognition_models`` packages;
- ``insightface``: an ArcFace ONNX model (512-D) run by onnxruntime, from a local model pack directory
  (detector and recognition model) or a single recognition ``.onnx`` file (then dlib detects the face and
  its 68-point model gives ArcFace's five alignment points). Nothing is ever downloaded.

Every embedding carries its backend's ``model_id``; templates of different models never compare.
The face policy for enrolment and verification is :func:`single_face` (:func:`embed_single`).
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from veilface.crypto import ConfigurationError, FaceError, InvalidEmbeddingError

from ._images import ImageSource, describe_source, read_image

__all__ = [
    "BACKENDS",
    "DEFAULT_MIN_FACE",
    "STAGES",
    "Face",
    "FaceEmbedder",
    "ImageSource",
    "StageTimer",
    "StagedFaceEmbedder",
    "embed_single",
    "load_embedder",
    "single_face",
    "unit_embedding",
]

BACKENDS = ("dlib", "insightface")

#: Smallest face, in pixels across (the longer side of its box), accepted for enrolment and verification.
DEFAULT_MIN_FACE = 64

#: Pipeline stages timed by :meth:`StagedFaceEmbedder.faces_with_timings`, in order.
STAGES = ("decode", "detect", "landmarks", "embed")


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: where it is, how sure the detector was, and its embedding.

    ``box`` is (left, top, right, bottom) in the original image's pixels, clipped to the image.
    The embedding is left out of ``repr`` so that a logged face never leaks it.
    """

    box: tuple[int, int, int, int]
    score: float
    embedding: np.ndarray = field(repr=False)

    @property
    def size(self) -> int:
        """The longer side of the box, in pixels."""
        left, top, right, bottom = self.box
        return max(right - left, bottom - top)


@runtime_checkable
class FaceEmbedder(Protocol):
    """What enrolment, verification and calibration need from a face model."""

    model_id: str
    dimension: int
    backend: str
    default_threshold: float

    def faces(self, image: ImageSource) -> list[Face]:
        """Every detected face with its L2-normalised float64 embedding, largest first."""
        ...


class StageTimer:
    """Wall-clock seconds spent per pipeline stage, accumulated over one image."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class StagedFaceEmbedder(abc.ABC):
    """Base of the built-in backends: decode once, then detect, locate landmarks and embed."""

    model_id: str
    dimension: int
    backend: str
    default_threshold: float

    def faces(self, image: ImageSource) -> list[Face]:
        """Every detected face with its L2-normalised float64 embedding, largest first."""
        return self.faces_with_timings(image)[0]

    def faces_with_timings(self, image: ImageSource) -> tuple[list[Face], dict[str, float]]:
        """Like :meth:`faces`, plus the seconds spent in each of :data:`STAGES`."""
        timer = StageTimer()
        with timer.stage("decode"):
            rgb = read_image(image)
        found = self._faces_in(rgb, timer)
        return sorted(found, key=lambda face: face.size, reverse=True), timer.seconds

    @abc.abstractmethod
    def _faces_in(self, rgb: np.ndarray, timer: StageTimer) -> list[Face]:
        """Faces in an upright H x W x 3 uint8 RGB image, timing each stage on ``timer``."""


def unit_embedding(raw: np.ndarray) -> np.ndarray:
    """``raw`` as a float64 vector of length 1; refuses a zero or non-finite model output."""
    vector = np.asarray(raw, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise InvalidEmbeddingError("the face model returned a zero or non-finite embedding")
    return vector / norm


def clip_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Round a (left, top, right, bottom) box and keep it inside a width x height image."""
    left, top, right, bottom = (round(value) for value in box)
    return (
        min(max(left, 0), width),
        min(max(top, 0), height),
        min(max(right, 0), width),
        min(max(bottom, 0), height),
    )


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
