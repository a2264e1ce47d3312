"""dlib backend: HOG face detector, 5-point landmarks, dlib's pretrained 128-D ResNet.

The model files come from the ``face_recognition_models`` package, located with ``importlib`` without
importing it: its ``__init__`` imports ``pkg_resources``, which setuptools >= 81 no longer ships.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import numpy as np

from veilface.crypto import ModelNotFoundError

from ._images import detection_view
from .faces import Face, StagedFaceEmbedder, StageTimer, clip_box, unit_embedding

MODEL_ID = "dlib-resnet-v1-128"
DIMENSION = 128

#: Cosine similarity above which two dlib embeddings are taken to be the same person.
#:
#: Source: dlib documents its ResNet as trained so that descriptors of one person lie within Euclidean
#: distance 0.6 of each other (dlib's ``dnn_face_recognition_ex.cpp``; 99.38% on LFW). Its descriptors are
#: not unit vectors: their norms measured 1.32-1.59, median 1.44, on 22 faces (the 15 photos of the
#: development set and the 7 faces of insightface's sample photos). For two descriptors of norm n,
#: ||a - b||^2 = 2 n^2 (1 - cos), so ||a - b|| < 0.6 becomes cos > 1 - 0.6^2 / (2 * 1.44^2) = 0.913.
#: (Reading them as unit vectors gives 1 - 0.6^2 / 2 = 0.82, which lets 48 of the development set's 91
#: impostor pairs match.) deepface's own tuning of the same model (its ``config/threshold.py``) uses cosine
#: distance 0.07, i.e. similarity 0.93. Calibrate on your own pairs with ``veilface calibrate``.
DEFAULT_THRESHOLD = 0.91

RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_5_FILE = "shape_predictor_5_face_landmarks.dat"
LANDMARKS_68_FILE = "shape_predictor_68_face_landmarks.dat"

#: dlib's HOG window is 80 px; one upsampling pass finds faces down to about 40 px in the detection copy.
_UPSAMPLE = 1


def models_directory() -> Path:
    """The ``models`` folder of the installed ``face_recognition_models``, found without importing it."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelNotFoundError(
            "dlib's model files come from the face_recognition_models package, which is not installed: "
            "pip install face_recognition_models"
        )
    return Path(locations[0]) / "models"


def model_file(name: str) -> Path:
    """Path of one of dlib's model files, checked to exist."""
    path = models_directory() / name
    if not path.is_file():
        raise ModelNotFoundError(
            f"dlib model file {name} is missing from {path.parent}; reinstall face_recognition_models"
        )
    return path


@dataclass(frozen=True)
class Detection:
    """A face found by the HOG detector: its rectangle in original pixels (may overhang) and score."""

    rect: Any  # dlib.rectangle: dlib ships no type information
    score: float


class DlibDetector:
    """dlib's HOG frontal-face detector run on a copy no longer than 1024 px, boxes in original pixels."""

    def __init__(self) -> None:
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        view, scale = detection_view(rgb)
        rects, scores, _ = self._detector.run(view, _UPSAMPLE, 0.0)
        return [
            Detection(
                rect=dlib.rectangle(
                    round(rect.left() / scale),
                    round(rect.top() / scale),
                    round(rect.right() / scale),
                    round(rect.bottom() / scale),
                ),
                score=float(score),
            )
            for rect, score in zip(rects, scores, strict=True)
        ]


def box_of(detection: Detection, rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The detection's rectangle clipped to the image, as (left, top, right, bottom)."""
    rect = detection.rect
    height, width = rgb.shape[:2]
    return clip_box((rect.left(), rect.top(), rect.right(), rect.bottom()), width, height)


class DlibEmbedder(StagedFaceEmbedder):
    """dlib's 128-D face embeddings (``model_id`` ``dlib-resnet-v1-128``)."""

    def __init__(self) -> None:
        self.model_id = MODEL_ID
        self.dimension = DIMENSION
        self.backend = "dlib"
        self.default_threshold = DEFAULT_THRESHOLD
        self._detector = DlibDetector()
        self._landmarks = dlib.shape_predictor(str(model_file(LANDMARKS_5_FILE)))
        self._resnet = dlib.face_recognition_model_v1(str(model_file(RESNET_FILE)))

    def _faces_in(self, rgb: np.ndarray, timer: StageTimer) -> list[Face]:
        with timer.stage("detect"):
            detections = self._detector.detect(rgb)
        if not detections:
            return []
        with timer.stage("landmarks"):
            shapes = dlib.full_object_detections()
            for detection in detections:
                shapes.append(self._landmarks(rgb, detection.rect))
        with timer.stage("embed"):
            descriptors = self._resnet.compute_face_descriptor(rgb, shapes)
        return [
            Face(
                box=box_of(detection, rgb),
                score=detection.score,
                embedding=unit_embedding(np.array(descriptor)),
            )
            for detection, descriptor in zip(detections, descriptors, strict=True)
        ]
