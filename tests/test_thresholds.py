"""One model table: the client backends and the matcher's settings take their model facts from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_fixtures import matcher_settings

from veilface.client.faces import load_embedder
from veilface.crypto import ConfigurationError
from veilface.protocol.face_models import ARCFACE, DLIB_RESNET, MODELS, FaceModel, find_model

#: A model id for each table entry; a family's member is shaped like the insightface backend's ids.
EXAMPLE_IDS = {DLIB_RESNET: DLIB_RESNET.model_id, ARCFACE: f"{ARCFACE.model_id}-0123456789ab-512"}


def test_the_table_finds_each_model_by_id() -> None:
    assert set(EXAMPLE_IDS) == set(MODELS)
    for model, model_id in EXAMPLE_IDS.items():
        assert find_model(model_id) is model
    for unknown in (ARCFACE.model_id, f"{DLIB_RESNET.model_id}-2", "facenet-512"):
        assert find_model(unknown) is None


def test_the_dlib_backend_states_the_tables_facts() -> None:
    embedder = load_embedder("dlib")
    assert find_model(embedder.model_id) is DLIB_RESNET
    assert (embedder.dimension, embedder.default_threshold) == (DLIB_RESNET.dimension, DLIB_RESNET.default_threshold)


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.model_id)
def test_the_matchers_default_threshold_is_the_tables(model: FaceModel, tmp_path: Path) -> None:
    settings = matcher_settings(tmp_path, tmp_path)
    model_id = EXAMPLE_IDS[model]
    if not model.family:
        assert settings.threshold_for(model_id) == model.default_threshold
        return
    # A family's default is a starting point for one member: the matcher may instead ask for a calibrated one.
    try:
        threshold = settings.threshold_for(model_id)
    except ConfigurationError as exc:
        assert "VEILFACE_MATCH_THRESHOLD" in exc.message
    else:
        assert threshold == model.default_threshold
