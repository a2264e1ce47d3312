"""The dlib backend on real photos shipped by insightface: same face above threshold, others below, policy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import numpy as np
import pytest
from face_fixtures import (
    encode,
    exif_rotated_jpeg,
    jpeg,
    mirrored,
    on_canvas,
    rescaled,
    rgba_png,
    sixteen_bit_gray_png,
    sixteen_bit_rgb_png,
)
from PIL import Image

from veilface.client.faces import (
    Face,
    FaceEmbedder,
    StagedFaceEmbedder,
    embed_single,
    load_embedder,
    single_face,
)
from veilface.client.samples import demo_cases, sample_images
from veilface.crypto import ConfigurationError, FaceError, ImageError


@pytest.fixture(scope="module")
def embedder() -> StagedFaceEmbedder:
    return load_embedder("dlib")


@pytest.fixture(scope="module")
def tom_embedding(embedder: StagedFaceEmbedder) -> np.ndarray:
    return embed_single(embedder, sample_images()["tom_hanks"])


@pytest.fixture(scope="module")
def group_faces(embedder: StagedFaceEmbedder) -> list[Face]:
    return embedder.faces(sample_images()["t1"])


def test_identity_of_the_model(embedder: StagedFaceEmbedder) -> None:
    assert isinstance(embedder, FaceEmbedder)
    assert (embedder.model_id, embedder.dimension, embedder.backend) == ("dlib-resnet-v1-128", 128, "dlib")
    assert embedder.default_threshold == pytest.approx(0.91)
    assert load_embedder("dlib") is embedder


def test_one_face_with_a_unit_float64_embedding(embedder: StagedFaceEmbedder, tom_embedding: np.ndarray) -> None:
    (face,) = embedder.faces(sample_images()["tom_hanks"])
    left, top, right, bottom = face.box
    assert 0 <= left < right <= 112 and 0 <= top < bottom <= 112
    assert face.size >= 64 and face.score > 0
    assert face.embedding.dtype == np.float64 and face.embedding.shape == (128,)
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0)
    assert np.array_equal(face.embedding, tom_embedding)
    assert "embedding" not in repr(face)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda tom: encode(mirrored(tom)), id="mirrored"),
        pytest.param(lambda tom: encode(rescaled(tom, 2.5)), id="enlarged"),
        pytest.param(lambda tom: jpeg(tom, 30), id="jpeg-q30"),
        pytest.param(lambda tom: jpeg(rescaled(mirrored(tom), 1.7), 60), id="all-three"),
    ],
)
def test_a_modified_copy_of_the_same_face_scores_above_threshold(
    embedder: StagedFaceEmbedder, tom: Image.Image, tom_embedding: np.ndarray, variant: Callable[[Image.Image], bytes]
) -> None:
    score = float(embed_single(embedder, variant(tom)) @ tom_embedding)
    assert score > embedder.default_threshold


def test_different_people_score_below_threshold(
    embedder: StagedFaceEmbedder, tom_embedding: np.ndarray, group_faces: list[Face]
) -> None:
    for face in group_faces:
        assert float(face.embedding @ tom_embedding) < embedder.default_threshold
    embeddings = np.array([face.embedding for face in group_faces])
    scores = embeddings @ embeddings.T
    others = scores[~np.eye(len(group_faces), dtype=bool)]
    assert np.all(others < embedder.default_threshold)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda tom: encode(tom.convert("L")), id="grayscale"),
        pytest.param(rgba_png, id="rgba"),
        pytest.param(sixteen_bit_gray_png, id="16-bit-gray"),
        pytest.param(sixteen_bit_rgb_png, id="16-bit-rgb"),
        pytest.param(exif_rotated_jpeg, id="exif-rotated"),
    ],
)
def test_unusual_encodings_of_the_same_photo_give_the_same_person(
    embedder: StagedFaceEmbedder, tom: Image.Image, tom_embedding: np.ndarray, variant: Callable[[Image.Image], bytes]
) -> None:
    embedding = embed_single(embedder, variant(tom))
    assert float(embedding @ tom_embedding) > 0.97


def test_large_images_are_detected_on_a_smaller_copy_and_boxed_in_original_pixels(
    embedder: StagedFaceEmbedder, tom: Image.Image, tom_embedding: np.ndarray
) -> None:
    large = on_canvas(rescaled(tom, 6), (4000, 3000), (1500, 1000))
    (face,) = embedder.faces(jpeg(large, 90))
    # Tom's face spans about (6, 26)-(96, 112) in his 112 px photo: x6 and shifted by the paste offset.
    expected = (1500 + 6 * 6, 1000 + 26 * 6, 1500 + 96 * 6, 1000 + 112 * 6)
    assert np.allclose(face.box, expected, atol=0.06 * face.size)
    assert float(face.embedding @ tom_embedding) > 0.97


def test_several_faces_are_listed_largest_first_and_refused_by_the_policy(
    embedder: StagedFaceEmbedder, group_faces: list[Face]
) -> None:
    assert len(group_faces) == 6
    sizes = [face.size for face in group_faces]
    assert sizes == sorted(sizes, reverse=True)
    with pytest.raises(FaceError, match="6 faces") as caught:
        embed_single(embedder, sample_images()["t1"])
    assert caught.value.faces == 6
    largest = single_face(embedder, sample_images()["t1"], take_largest=True)
    assert largest.size == sizes[0]
    assert np.allclose(largest.embedding, group_faces[0].embedding)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(Image.new("RGB", (640, 480), (128, 128, 128)), id="blank"),
        pytest.param(
            Image.fromarray(np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)), id="noise"
        ),
    ],
)
def test_an_image_without_a_face_is_refused(embedder: StagedFaceEmbedder, image: Image.Image) -> None:
    assert embedder.faces(encode(image)) == []
    with pytest.raises(FaceError, match="no face found") as caught:
        embed_single(embedder, encode(image))
    assert caught.value.faces == 0


def test_a_face_below_the_minimum_size_is_refused(embedder: StagedFaceEmbedder, tom: Image.Image) -> None:
    small = encode(on_canvas(rescaled(tom, 0.65), (300, 300), (100, 100)))
    (face,) = embedder.faces(small)
    assert 40 <= face.size < 64
    with pytest.raises(FaceError, match=f"{face.size} px across, smaller than the minimum of 64 px"):
        embed_single(embedder, small)
    assert embed_single(embedder, small, min_face=40).shape == (128,)


def test_bad_input_raises_image_error_not_a_pillow_exception(embedder: StagedFaceEmbedder) -> None:
    with pytest.raises(ImageError, match="not an image format"):
        embedder.faces(b"%PDF-1.7 definitely not a photo")


def test_a_model_path_is_refused_for_dlib_and_unknown_backends_are_named() -> None:
    with pytest.raises(ConfigurationError, match="insightface backend only"):
        load_embedder("dlib", model_path="/models/x.onnx")
    with pytest.raises(ConfigurationError, match="unknown face backend 'facenet'"):
        load_embedder("facenet")


def test_stage_timings_cover_every_stage(embedder: StagedFaceEmbedder) -> None:
    faces, seconds = embedder.faces_with_timings(sample_images()["tom_hanks"])
    assert len(faces) == 1
    assert list(seconds) == ["decode", "detect", "landmarks", "embed"]
    assert all(value > 0 for value in seconds.values())


def test_demo_cases_decide_as_expected_with_the_default_threshold(embedder: StagedFaceEmbedder) -> None:
    cases = demo_cases()
    assert sorted(case.expected_match for case in cases) == [False, False, True, True]
    for case in cases:
        enrolled = embed_single(embedder, case.enrol_image)
        probe = embed_single(embedder, case.probe_image)
        assert (float(enrolled @ probe) > embedder.default_threshold) is case.expected_match, case.name


def test_models_load_where_pkg_resources_does_not_exist() -> None:
    script = textwrap.dedent(
        """
        import sys

        class NoPkgResources:
            def find_spec(self, name, path=None, target=None):
                if name == "pkg_resources" or name.startswith("pkg_resources."):
                    raise ModuleNotFoundError("No module named 'pkg_resources'", name=name)
                return None

        sys.meta_path.insert(0, NoPkgResources())
        try:
            import face_recognition_models
        except ModuleNotFoundError as exc:
            assert exc.name == "pkg_resources", exc
        else:
            raise SystemExit("the hook did not hide pkg_resources")

        from veilface.client.faces import embed_single, load_embedder
        from veilface.client.samples import sample_images

        embedding = embed_single(load_embedder("dlib"), sample_images()["tom_hanks"])
        print(embedding.shape[0], "pkg_resources" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["128", "False"]
