"""What every face backend shares: the :class:`Face` record, the embedder protocol, the staged pipeline.

Backends (``_dlib_backend``, ``_insightface_backend``) import this module; it imports none of them. The
factory that chooses a backend is :mod:`veilface.client.faces`.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from veilface.crypto import InvalidEmbeddingError

from ._images import ImageSource, read_image

__all__ = [
    "STAGES",
    "Face",
    "FaceEmbedder",
    "StageTimer",
    "StagedFaceEmbedder",
    "clip_box",
    "unit_embedding",
]

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
