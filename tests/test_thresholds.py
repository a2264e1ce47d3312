"""The matcher's default thresholds are the client backends' documented ones."""

from __future__ import annotations

from veilface.client import _dlib_backend
from veilface.server.settings import DEFAULT_THRESHOLDS


def test_dlib_threshold_agrees() -> None:
    assert DEFAULT_THRESHOLDS[_dlib_backend.MODEL_ID] == _dlib_backend.DEFAULT_THRESHOLD
