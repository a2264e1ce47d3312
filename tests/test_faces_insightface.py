"""The insightface backend through insightface's real model zoo, with small ONNX models built here.

No network: a socket guard makes any download attempt fail loudly instead of silently succeeding.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from face_fixtures import (
    SCRFD_BOX,
    SCRFD_SCORE,
    arcface_like_onnx,
    encode,
    photo,
    scrfd_like_onnx,
    unrouted_onnx,
)
from PIL import Image

from veilface.client._insightface_backend import five_points_from_68
from veilface.client.faces import StagedFaceEmbedder, embed_single, load_embedder
from veilface.client.samples import sample_images
from veilface.crypto import FaceError, ModelNotFoundError
from veilface.protocol.face_models import ARCFACE, find_model


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the insightface backend tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onnx")
    arcface_like_onnx(folder / "recognition.onnx")
    pack = folder / "buffalo_test"
    pack.mkdir()
    shutil.copy(folder / "recognition.onnx", pack / "w600k_r50.onnx")
    scrfd_like_onnx(pack / "det_10g.onnx")
    unrouted_onnx(pack / "genderage.onnx")
    return folder


@pytest.fixture(scope="module")
def single_file(models: Path) -> StagedFaceEmbedder:
    return load_embedder("insightface", model_path=models / "recognition.onnx")


def sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_a_recognition_file_loads_with_an_id_from_its_contents(models: Path, single_file: StagedFaceEmbedder) -> None:
    assert single_file.backend == "insightface"
    assert single_file.dimension == 512
    assert single_file.model_id == f"arcface-{sha12(models / 'recognition.onnx')}-512"
    assert single_file.default_threshold == pytest.approx(0.45)
    assert find_model(single_file.model_id) is ARCFACE and single_file.default_threshold == ARCFACE.default_threshold
    assert load_embedder("insightface", model_path=models / "recognition.onnx") is single_file


def test_other_weights_give_another_model_id(models: Path, single_file: StagedFaceEmbedder) -> None:
    other = load_embedder("insightface", model_path=arcface_like_onnx(models / "other.onnx", seed=1))
    assert other.model_id != single_file.model_id
    assert other.model_id == f"arcface-{sha12(models / 'other.onnx')}-512"


def test_a_single_file_detects_with_dlib_and_embeds_every_face(single_file: StagedFaceEmbedder) -> None:
    faces = single_file.faces(sample_images()["t1"])
    assert len(faces) == 6
    for face in faces:
        assert face.embedding.shape == (512,) and face.embedding.dtype == np.float64
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0)
    assert len({face.embedding.tobytes() for face in faces}) == 6
    with pytest.raises(FaceError, match="6 faces"):
        embed_single(single_file, sample_images()["t1"])


def test_the_same_photo_gives_the_same_embedding(single_file: StagedFaceEmbedder) -> None:
    tom = photo("tom_hanks")
    from_path = embed_single(single_file, sample_images()["tom_hanks"])
    from_bytes = embed_single(single_file, encode(tom))
    assert np.allclose(from_path, from_bytes)


def test_five_points_are_eye_centres_nose_tip_and_mouth_corners() -> None:
    points = np.zeros((68, 2), dtype=np.float32)
    points[36:42] = [[10, 20], [12, 18], [14, 18], [16, 20], [14, 22], [12, 22]]
    points[42:48] = [[30, 20], [32, 18], [34, 18], [36, 20], [34, 22], [32, 22]]
    points[30] = [23, 30]
    points[48] = [15, 40]
    points[54] = [31, 40]
    expected = [[13, 20], [33, 20], [23, 30], [15, 40], [31, 40]]
    assert np.allclose(five_points_from_68(points), expected)


def test_a_pack_uses_its_own_detector_and_maps_boxes_back_to_original_pixels(models: Path) -> None:
    pack = load_embedder("insightface", model_path=models / "buffalo_test")
    assert pack.model_id == f"arcface-{sha12(models / 'recognition.onnx')}-512"
    (face,) = pack.faces(encode(Image.new("RGB", (640, 640), (90, 90, 90))))
    assert face.box == tuple(round(v) for v in SCRFD_BOX)
    assert face.score == pytest.approx(SCRFD_SCORE)
    # 1600 px wide: shrunk to 1024 for detection, then 640 inside SCRFD; the box must scale by 2.5.
    (face,) = pack.faces(encode(Image.new("RGB", (1600, 1600), (90, 90, 90))))
    assert np.allclose(face.box, [2.5 * v for v in SCRFD_BOX], atol=2)
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0)


def test_the_environment_variable_chooses_the_model(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEILFACE_INSIGHTFACE_MODEL", str(models / "recognition.onnx"))
    assert load_embedder("insightface").model_id == f"arcface-{sha12(models / 'recognition.onnx')}-512"


def test_a_missing_pack_names_the_directory_and_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEILFACE_INSIGHTFACE_MODEL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as caught:
        load_embedder("insightface")
    message = caught.value.message
    assert str(tmp_path / ".insightface" / "models" / "buffalo_l") in message
    assert "det_10g.onnx" in message and "w600k_r50.onnx" in message
    assert "never downloads" in message and "non-commercial" in message
    assert not (tmp_path / ".insightface").exists()


def test_a_missing_named_pack_lists_that_packs_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"det_500m\.onnx, w600k_mbf\.onnx"):
        load_embedder("insightface", model_path=tmp_path / "buffalo_sc")


def test_a_pack_without_a_recognition_model_is_refused(tmp_path: Path) -> None:
    scrfd_like_onnx(tmp_path / "det_10g.onnx")
    with pytest.raises(ModelNotFoundError, match="holds no face recognition model"):
        load_embedder("insightface", model_path=tmp_path)


def test_a_file_that_is_not_a_recognition_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a face recognition model"):
        load_embedder("insightface", model_path=unrouted_onnx(tmp_path / "shape.onnx"))


def test_a_corrupt_model_file_is_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "w600k_r50.onnx"
    corrupt.write_bytes(b"\x08\x07 not really protobuf" * 10)
    with pytest.raises(ModelNotFoundError, match="not a usable ONNX model"):
        load_embedder("insightface", model_path=corrupt)
