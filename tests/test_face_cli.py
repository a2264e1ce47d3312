"""``veilface embed`` and ``veilface calibrate`` through the real app, and the face benchmark's entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from face_fixtures import encode, jpeg, mirrored, photo
from PIL import Image
from typer.testing import CliRunner

from veilface.cli.app import app
from veilface.cli.bench import bench_app
from veilface.client.samples import sample_images

runner = CliRunner()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    tom = photo("tom_hanks")
    files = {
        "tom": ("tom.png", encode(tom)),
        "tom_copy": ("tom_copy.jpg", jpeg(mirrored(tom), 80)),
        "blank": ("blank.png", encode(Image.new("RGB", (120, 120), (128, 128, 128)))),
        "corrupt": ("corrupt.jpg", jpeg(tom, 90)[:300]),
    }
    paths = {}
    for key, (name, data) in files.items():
        paths[key] = folder / name
        paths[key].write_bytes(data)
    return paths


def test_embed_json_is_the_only_thing_on_stdout(images: dict[str, Path]) -> None:
    t1 = sample_images()["t1"]
    result = runner.invoke(app, ["embed", "--json", str(images["tom"]), str(t1)])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["model_id"], document["dimension"]) == ("dlib-resnet-v1-128", 128)
    assert [image["path"] for image in document["images"]] == [str(images["tom"]), str(t1)]
    tom_faces, group_faces = (image["faces"] for image in document["images"])
    assert len(tom_faces) == 1 and len(group_faces) == 6
    face = tom_faces[0]
    assert set(face) == {"box", "score", "embedding"}
    assert len(face["box"]) == 4 and len(face["embedding"]) == 128
    assert sum(value * value for value in face["embedding"]) == pytest.approx(1.0)


def test_embed_lists_faces_for_people(images: dict[str, Path]) -> None:
    result = runner.invoke(app, ["embed", str(sample_images()["t1"])])
    assert result.exit_code == 0, result.stderr
    assert "t1.jpg: 6 faces" in result.stdout
    assert result.stdout.count(" box ") == 6
    assert "embedding" not in result.stdout and "dlib-resnet-v1-128" in result.stderr


def test_embed_take_largest_keeps_one_face() -> None:
    result = runner.invoke(app, ["embed", "--json", "--take-largest", str(sample_images()["t1"])])
    assert result.exit_code == 0, result.stderr
    (image,) = json.loads(result.stdout)["images"]
    assert len(image["faces"]) == 1


def test_bad_images_give_per_image_errors_and_exit_3(images: dict[str, Path]) -> None:
    paths = [images["tom"], images["corrupt"], images["blank"], images["tom"].with_name("missing.png")]
    result = runner.invoke(app, ["embed", "--json", *map(str, paths)])
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    entries = document["images"]
    assert "faces" in entries[0] and "error" not in entries[0]
    assert "corrupt or truncated" in entries[1]["error"]
    assert "no face found" in entries[2]["error"]
    assert "cannot read" in entries[3]["error"]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 3
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(images: dict[str, Path]) -> None:
    assert runner.invoke(app, ["embed", "--backend", "facenet", str(images["tom"])]).exit_code == 2
    result = runner.invoke(app, ["embed", "--model", "/models/r50.onnx", str(images["tom"])])
    assert result.exit_code == 2 and "insightface only" in result.stderr
    assert runner.invoke(app, ["embed"]).exit_code == 2
    assert runner.invoke(app, ["calibrate", str(images["tom"].with_name("nope.csv"))]).exit_code == 2


def test_a_missing_insightface_model_is_one_error_line(images: dict[str, Path], tmp_path: Path) -> None:
    pack = tmp_path / "buffalo_l"
    result = runner.invoke(app, ["embed", "--backend", "insightface", "--model", str(pack), str(images["tom"])])
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"Error: no insightface model at {pack}")
    assert result.stdout == ""
    verbose = runner.invoke(
        app, ["--verbose", "embed", "--backend", "insightface", "--model", str(pack), str(images["tom"])]
    )
    assert verbose.exit_code == 3 and "Traceback" in verbose.stderr


def test_calibrate_json(images: dict[str, Path], tmp_path: Path) -> None:
    t1_crop = tmp_path / "t1_face.png"
    with Image.open(sample_images()["t1"]) as group:
        group.crop((400, 240, 620, 460)).resize((440, 440)).save(t1_crop)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "image_a,image_b,same\n"
        f"{images['tom']},{images['tom_copy']},1\n"
        f"{images['tom']},{t1_crop.name},0\n"
        f"{images['blank']},{images['tom']},1\n"
    )
    result = runner.invoke(app, ["calibrate", str(pairs), "--json", "--target-fmr", "0"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model_id"] == "dlib-resnet-v1-128"
    assert (report["genuine_pairs"], report["impostor_pairs"], report["skipped_pairs"]) == (1, 1, 1)
    assert report["eer"] == 0.0
    assert [failure["image"] for failure in report["failures_to_acquire"]] == [str(images["blank"])]
    assert "failure to acquire" in result.stderr
    human = runner.invoke(app, ["calibrate", str(pairs)])
    assert human.exit_code == 0 and "EER" in human.stdout and "threshold at FMR <= 0.001" in human.stdout
    assert runner.invoke(app, ["calibrate", str(pairs), "--target-fmr", "1.5"]).exit_code == 2


def test_the_face_benchmark_writes_json_and_a_table(tmp_path: Path) -> None:
    out = tmp_path / "faces.json"
    ran = runner.invoke(bench_app, ["faces", "--runs", "1", "--backend", "dlib", "--json", str(out)])
    assert ran.exit_code == 0, ran.output
    report = json.loads(out.read_text())
    faces_per_image = {result["image"]: result["faces"] for result in report["results"]}
    assert faces_per_image == {"tom_hanks 112x112": 1, "t1 1280x886": 6, "large 4000x3000": 1}
    for result in report["results"]:
        assert set(result["ms"]) == {"decode", "detect", "landmarks", "embed", "total"}
    assert "| dlib | t1 1280x886 | 6 |" in ran.stdout
