"""dlib's HOG face detector and model files, shared by the dlib backend and the insightface backend.

(The insightface backend uses them when it is given a single recognition ``.onnx`` file and no detector.)
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

from ._face_base import clip_box
from ._images import detection_view

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
