"""insightface backend: ArcFace recognition through onnxruntime, loaded with insightface's own model zoo.

Two layouts, never downloaded:

- a model pack directory (``buffalo_l`` and friends): its SCRFD detector gives boxes and the five
  alignment points, its recognition model the embedding;
- a single recognition ``.onnx`` file (or a directory holding only one): dlib detects the face and its
  68-point model gives ArcFace's five points (eye centres, nose tip, mouth corners).

Faces are aligned with ``insightface.utils.face_align.norm_crop`` to ArcFace's reference points. The
default threshold (with where it comes from) is :data:`veilface.protocol.face_models.ARCFACE`'s.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import numpy as np

from veilface.crypto import ModelNotFoundError
from veilface.protocol.face_models import ARCFACE

from ._dlib_detector import LANDMARKS_68_FILE, DlibDetector, box_of, model_file
from ._face_base import Face, StagedFaceEmbedder, StageTimer, clip_box, unit_embedding
from ._images import detection_view

logger = logging.getLogger(__name__)

#: Environment variable naming the model pack directory or recognition ``.onnx`` file.
MODEL_ENV = "VEILFACE_INSIGHTFACE_MODEL"
DEFAULT_PACK = Path("~/.insightface/models/buffalo_l")

#: What insightface's packs hold (from its model zoo), to say which files a missing pack should contain.
PACK_FILES = {
    "buffalo_l": ("1k3d68.onnx", "2d106det.onnx", "det_10g.onnx", "genderage.onnx", "w600k_r50.onnx"),
    "buffalo_m": ("1k3d68.onnx", "2d106det.onnx", "det_2.5g.onnx", "genderage.onnx", "w600k_r50.onnx"),
    "buffalo_s": ("1k3d68.onnx", "2d106det.onnx", "det_500m.onnx", "genderage.onnx", "w600k_mbf.onnx"),
    "buffalo_sc": ("det_500m.onnx", "w600k_mbf.onnx"),
    "antelopev2": (
        "1k3d68.onnx",
        "2d106det.onnx",
        "genderage.onnx",
        "glintr100.onnx",
        "scrfd_10g_bnkps.onnx",
    ),
}

_PACK_URL = "https://github.com/deepinsight/insightface/releases/download/model-zoo/{name}.zip"
_PROVIDERS = ["CPUExecutionProvider"]
_DETECTOR_INPUT = (640, 640)
_DETECTOR_THRESHOLD = 0.5

# dlib's 68-point indices: eye contours 36-41 (image left) and 42-47, nose tip 30, mouth corners 48 and 54.
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_LEFT = 48
_MOUTH_RIGHT = 54


def resolve_model_path(model_path: str | os.PathLike[str] | None) -> Path:
    """The model location to use: the argument, else ``$VEILFACE_INSIGHTFACE_MODEL``, else buffalo_l."""
    chosen = model_path if model_path is not None else os.environ.get(MODEL_ENV) or DEFAULT_PACK
    return Path(chosen).expanduser().resolve()


def model_id_for(recognition_file: Path, dimension: int) -> str:
    """``arcface-<first 12 hex of the file's SHA-256>-<dimension>`` (the table's ``ARCFACE`` family)."""
    digest = hashlib.sha256()
    with recognition_file.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return f"{ARCFACE.model_id}-{digest.hexdigest()[:12]}-{dimension}"


def five_points_from_68(points: np.ndarray) -> np.ndarray:
    """ArcFace's five points (eye centres, nose tip, mouth corners, image-left first) from dlib's 68."""
    return np.array(
        [
            points[_LEFT_EYE].mean(axis=0),
            points[_RIGHT_EYE].mean(axis=0),
            points[_NOSE_TIP],
            points[_MOUTH_LEFT],
            points[_MOUTH_RIGHT],
        ],
        dtype=np.float32,
    )


def missing_model_message(path: Path, problem: str | None = None) -> str:
    """``problem`` (default: nothing at ``path``), then what to put where."""
    pack = path.name if path.name in PACK_FILES else "buffalo_l"
    return (
        f"{problem or f'no insightface model at {path}'}: expected a model pack directory holding "
        f"{', '.join(PACK_FILES[pack])} ({pack}), or a recognition .onnx file. veilface never downloads "
        f"models: unzip {_PACK_URL.format(name=pack)} into {path}, or point --model (or {MODEL_ENV}) at a "
        "pack directory or a recognition .onnx file. The buffalo models are licensed for non-commercial "
        "research only."
    )


def _load_onnx(file: Path) -> Any:
    """insightface's model zoo applied to one file: an ArcFaceONNX, an SCRFD, another model, or None."""
    from insightface.model_zoo import model_zoo

    try:
        return model_zoo.get_model(str(file), providers=_PROVIDERS)
    # onnxruntime, protobuf and insightface's own asserts all fail differently on a bad file.
    except Exception as exc:
        raise ModelNotFoundError(f"{file} is not a usable ONNX model ({type(exc).__name__}: {exc})") from exc


def load_insightface(path: Path) -> InsightfaceEmbedder:
    """Load a model pack directory or a single recognition ``.onnx`` file; never downloads."""
    if path.is_file():
        recognizer = _load_onnx(path)
        if getattr(recognizer, "taskname", None) != "recognition":
            raise ModelNotFoundError(
                f"{path} is not a face recognition model (insightface expects one square image input, "
                "at least 112 px and a multiple of 16, and one output)"
            )
        return InsightfaceEmbedder(recognizer, path, detector=None)
    files = sorted(path.glob("*.onnx")) if path.is_dir() else []
    if not files:
        raise ModelNotFoundError(missing_model_message(path))
    models: dict[str, tuple[Path, Any]] = {}
    for file in files:
        model = _load_onnx(file)
        task = getattr(model, "taskname", None)
        if task in ("detection", "recognition") and task not in models:
            models[task] = (file, model)
        else:
            logger.debug("model pack %s: not using %s (task %s)", path, file.name, task)
    if "recognition" not in models:
        found = ", ".join(file.name for file in files)
        raise ModelNotFoundError(missing_model_message(path, f"{path} holds no face recognition model ({found})"))
    recognition_file, recognizer = models["recognition"]
    detector = models["detection"][1] if "detection" in models else None
    if detector is not None:
        if not detector.use_kps:
            raise ModelNotFoundError(
                f"{models['detection'][0]} detects faces without landmarks; ArcFace alignment needs them"
            )
        detector.prepare(-1, input_size=_DETECTOR_INPUT, det_thresh=_DETECTOR_THRESHOLD)
    return InsightfaceEmbedder(recognizer, recognition_file, detector=detector)


@dataclass(frozen=True)
class _Located:
    box: tuple[int, int, int, int]
    score: float
    five_points: np.ndarray


class _ScrfdLocator:
    """The pack's SCRFD detector: boxes and the five alignment points in one pass."""

    def __init__(self, detector: Any) -> None:
        self._detector = detector

    def locate(self, bgr: np.ndarray, timer: StageTimer) -> list[_Located]:
        height, width = bgr.shape[:2]
        with timer.stage("detect"):
            view, scale = detection_view(bgr)
            boxes, points = self._detector.detect(view)
        located = []
        for row, five in zip(boxes, points, strict=True):
            left, top, right, bottom = (float(value) / scale for value in row[:4])
            box = clip_box((left, top, right, bottom), width, height)
            located.append(_Located(box, float(row[4]), five / scale))
        return located


class _DlibLocator:
    """dlib's HOG detector, then its 68-point model reduced to ArcFace's five points."""

    def __init__(self) -> None:
        self._detector = DlibDetector()
        self._landmarks = dlib.shape_predictor(str(model_file(LANDMARKS_68_FILE)))

    def locate(self, bgr: np.ndarray, timer: StageTimer) -> list[_Located]:
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        with timer.stage("detect"):
            detections = self._detector.detect(rgb)
        located = []
        with timer.stage("landmarks"):
            for detection in detections:
                shape = self._landmarks(rgb, detection.rect)
                points = np.array([(part.x, part.y) for part in shape.parts()], dtype=np.float32)
                located.append(_Located(box_of(detection, rgb), detection.score, five_points_from_68(points)))
        return located


class InsightfaceEmbedder(StagedFaceEmbedder):
    """ArcFace embeddings; ``model_id`` is ``arcface-<sha256 prefix of the recognition file>-<dimension>``."""

    def __init__(self, recognizer: Any, recognition_file: Path, *, detector: Any | None) -> None:
        from insightface.utils import face_align

        self._align = face_align.norm_crop
        self._recognizer = recognizer
        self._crop_size = int(recognizer.input_size[0])
        recognizer.prepare(-1)
        self._locator: _ScrfdLocator | _DlibLocator = (
            _ScrfdLocator(detector) if detector is not None else _DlibLocator()
        )
        blank = np.zeros((self._crop_size, self._crop_size, 3), dtype=np.uint8)
        try:
            probe = np.asarray(recognizer.get_feat(blank))
        # onnxruntime reports shape and type mismatches with its own exception types.
        except Exception as exc:
            raise ModelNotFoundError(
                f"{recognition_file} does not run as a recognition model ({type(exc).__name__}: {exc})"
            ) from exc
        self.dimension = int(probe.reshape(-1).shape[0])
        self.model_id = model_id_for(recognition_file, self.dimension)
        self.backend = "insightface"
        self.default_threshold = ARCFACE.default_threshold
        self.recognition_file = recognition_file
        self.detector_name = "scrfd" if detector is not None else "dlib-hog+68-landmarks"

    def _faces_in(self, rgb: np.ndarray, timer: StageTimer) -> list[Face]:
        # insightface's models, like OpenCV, take BGR pixels.
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        located = self._locator.locate(bgr, timer)
        faces = []
        with timer.stage("embed"):
            for face in located:
                points = np.asarray(face.five_points, dtype=np.float32)
                with warnings.catch_warnings():
                    # norm_crop calls a scikit-image method deprecated in 0.26: not ours to act on.
                    warnings.simplefilter("ignore", FutureWarning)
                    crop = self._align(bgr, landmark=points, image_size=self._crop_size)
                embedding = unit_embedding(self._recognizer.get_feat(crop))
                faces.append(Face(box=face.box, score=face.score, embedding=embedding))
        return faces
