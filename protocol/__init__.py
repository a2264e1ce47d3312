"""veilface.protocol: what crosses a process boundary between client, matcher and authority.

Paths, headers, request and response models, problem types and the face-model table. It imports
``veilface.crypto`` only: never FastAPI, httpx or another role's code (docs/design.md, "Architecture").

    paths         URL paths, and how a subject id goes into one
    headers       header names and syntax, media types of raw bodies
    problems      ProblemType: every error's slug, status and title; the problem+json body
    messages      JSON bodies (public keys, subject metadata, decision request and answer), body limits
    face_models   the face-embedding model table
"""

from veilface.crypto import DecisionRecord, utc_now
from veilface.protocol import face_models, headers, paths
from veilface.protocol.face_models import ARCFACE, DEFAULT_MODEL, DLIB_RESNET, MODELS, FaceModel, find_model
from veilface.protocol.messages import (
    AuthorityReadiness,
    DecisionAnswer,
    DecisionRequest,
    Health,
    MatcherReadiness,
    PublicKeysAnswer,
    SubjectMeta,
    blinded_body_limit,
    embedding_body_limit,
)
from veilface.protocol.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, ProblemDetails, ProblemType

__all__ = [
    "ARCFACE",
    "DEFAULT_MODEL",
    "DLIB_RESNET",
    "MODELS",
    "PROBLEM_BASE",
    "PROBLEM_MEDIA_TYPE",
    "AuthorityReadiness",
    "DecisionAnswer",
    "DecisionRecord",
    "DecisionRequest",
    "FaceModel",
    "Health",
    "MatcherReadiness",
    "ProblemDetails",
    "ProblemType",
    "PublicKeysAnswer",
    "SubjectMeta",
    "blinded_body_limit",
    "embedding_body_limit",
    "face_models",
    "find_model",
    "headers",
    "paths",
    "utc_now",
]
