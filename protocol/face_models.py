"""The one table of face-embedding models: model id, dimension, default cosine threshold, licence.

Client backends, the matcher's settings, the key ceremony's defaults and the benchmarks all read it; a
threshold is a starting point per model, to be calibrated per deployment (``veilface calibrate``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaceModel:
    """One embedding model; ``model_id`` is exact, or a family prefix when ``family`` is true."""

    model_id: str
    dimension: int
    default_threshold: float
    licence: str
    family: bool = False

    def matches(self, model_id: str) -> bool:
        return model_id.startswith(self.model_id + "-") if self.family else model_id == self.model_id


#: dlib's 128-D ResNet. Threshold: dlib documents its ResNet as trained so that descriptors of one person
#: lie within Euclidean distance 0.6 of each other (dlib's ``dnn_face_recognition_ex.cpp``; 99.38% on LFW).
#: Its descriptors are not unit vectors: their norms measured 1.32-1.59, median 1.44, on 22 faces (the 15
#: photos of the development set and the 7 faces of insightface's sample photos). For two descriptors of
#: norm n, ||a - b||^2 = 2 n^2 (1 - cos), so ||a - b|| < 0.6 becomes cos > 1 - 0.6^2 / (2 * 1.44^2) = 0.913.
#: (Reading them as unit vectors gives 1 - 0.6^2 / 2 = 0.82, which lets 48 of the development set's 91
#: impostor pairs match.) deepface's own tuning of the same model (its ``config/threshold.py``) uses cosine
#: distance 0.07, i.e. similarity 0.93.
DLIB_RESNET = FaceModel(
    model_id="dlib-resnet-v1-128",
    dimension=128,
    default_threshold=0.91,
    licence="public domain (Davis King, dlib-models)",
)

#: ArcFace through insightface; ids are ``arcface-<sha256 prefix of the recognition file>-<dimension>``.
#: Threshold: insightface publishes none. deepface, which runs the same buffalo_l recognition model
#: (w600k_r50), tuned cosine distance 0.55 for it (``deepface/config/threshold.py``, "Buffalo_L"), i.e.
#: similarity 0.45. It is a starting point for buffalo_l only: any other recognition model should be
#: calibrated.
ARCFACE = FaceModel(
    model_id="arcface",
    dimension=512,
    default_threshold=0.45,
    licence="buffalo_l / buffalo_s: non-commercial research only (insightface model zoo)",
    family=True,
)

MODELS: tuple[FaceModel, ...] = (DLIB_RESNET, ARCFACE)
DEFAULT_MODEL = DLIB_RESNET


def find_model(model_id: str) -> FaceModel | None:
    """The table's entry for ``model_id``, or None for a model the table does not know."""
    return next((model for model in MODELS if model.matches(model_id)), None)
