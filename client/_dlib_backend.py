"""dlib backend: HOG face detector, 5-point landmarks, dlib's pretrained 128-D ResNet.

The model's id, dimension and default threshold (with where it comes from) are
:data:`veilface.protocol.face_models.DLIB_RESNET`.
"""

from __future__ import annotations

import dlib
import numpy as np

from veilface.protocol.face_models import DLIB_RESNET

from ._dlib_detector import LANDMARKS_5_FILE, RESNET_FILE, DlibDetector, box_of, model_file
from ._face_base import Face, StagedFaceEmbedder, StageTimer, unit_embedding


class DlibEmbedder(StagedFaceEmbedder):
    """dlib's 128-D face embeddings, model :data:`~veilface.protocol.face_models.DLIB_RESNET`."""

    def __init__(self) -> None:
        self.model_id = DLIB_RESNET.model_id
        self.dimension = DLIB_RESNET.dimension
        self.backend = "dlib"
        self.default_threshold = DLIB_RESNET.default_threshold
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
