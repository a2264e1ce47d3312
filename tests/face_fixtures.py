"""Test inputs for the face pipeline, made from what installed packages ship: no network, no ../shared.

- photo variants (mirrored, rescaled, re-compressed, grayscale, RGBA, 16-bit, EXIF-rotated) as bytes;
- small ONNX models shaped like insightface's ArcFace recognition model and SCRFD detector, built with
  the ``onnx`` package so that insightface's real model zoo loads them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageOps

from veilface.client.samples import sample_images


def photo(name: str) -> Image.Image:
    """One of the shipped sample photos ("tom_hanks": one aligned face; "t1": six faces) as RGB."""
    with Image.open(sample_images()[name]) as image:
        return image.convert("RGB")


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(image: Image.Image, quality: int) -> bytes:
    return encode(image.convert("RGB"), "JPEG", quality=quality)


def mirrored(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


def rescaled(image: Image.Image, factor: float) -> Image.Image:
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.BICUBIC)


def exif_rotated_jpeg(image: Image.Image) -> bytes:
    """The image stored sideways with EXIF orientation 6 (rotate 90° clockwise to view upright)."""
    sideways = image.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(sideways, "JPEG", quality=95, exif=exif.tobytes())


def sixteen_bit_gray_png(image: Image.Image) -> bytes:
    levels = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(levels), "PNG")


def sixteen_bit_rgb_png(image: Image.Image) -> bytes:
    """A 48-bit RGB PNG (Pillow cannot write one), written with OpenCV, which insightface depends on."""
    import cv2

    levels = np.asarray(image, dtype=np.uint16) * 257
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(levels[:, :, ::-1]))
    assert ok
    return buffer.tobytes()


def rgba_png(image: Image.Image) -> bytes:
    """The image, opaque, inside a 20 px fully transparent border whose hidden colour is black."""
    canvas = Image.new("RGBA", (image.width + 40, image.height + 40), (0, 0, 0, 0))
    canvas.paste(image.convert("RGBA"), (20, 20))
    return encode(canvas, "PNG")


def on_canvas(image: Image.Image, size: tuple[int, int], at: tuple[int, int]) -> Image.Image:
    canvas = Image.new("RGB", size, (235, 235, 235))
    canvas.paste(image, at)
    return canvas


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=f"const_{name}", value=numpy_helper.from_array(array, name))


def arcface_like_onnx(path: Path, *, seed: int = 0, dimension: int = 512) -> Path:
    """A recognition-shaped model: 1x3x112x112 float in, 1 x ``dimension`` out (8x8 pooling, projection)."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((3 * 14 * 14, dimension)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["data"], ["pooled"], name="pool", kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1),
        _const("weights", weights),
        helper.make_node("MatMul", ["flat", "weights"], ["fc1"], name="project"),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_like",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, dimension])],
    )
    _save(graph, path)
    return path


def unrouted_onnx(path: Path) -> Path:
    """A valid ONNX model that insightface routes to no task (100 x 100 input)."""
    nodes = [helper.make_node("Identity", ["data"], ["out"], name="identity")]
    graph = helper.make_graph(
        nodes,
        "unrouted",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 100, 100])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 100, 100])],
    )
    _save(graph, path)
    return path


#: Where the fake detector always "finds" a face in its 640 x 640 input: box and ArcFace's five points.
SCRFD_BOX = (240.0, 240.0, 400.0, 400.0)
SCRFD_POINTS = ((290.0, 300.0), (350.0, 300.0), (320.0, 330.0), (295.0, 360.0), (345.0, 360.0))
SCRFD_SCORE = 0.9


def scrfd_like_onnx(path: Path) -> Path:
    """A detector with SCRFD's nine outputs (3 strides x score, box, 5 points) that reports one fixed face.

    Input 1x3x640x640; the face is on the stride-32 anchor centred at (320, 320).
    """
    strides = (8, 16, 32)
    nodes = [helper.make_node("ReduceMean", ["data"], ["mean"], name="mean", keepdims=0)]
    nodes.append(_const("zero", np.zeros((), dtype=np.float32)))
    nodes.append(helper.make_node("Mul", ["mean", "zero"], ["nothing"], name="nothing"))
    outputs = []
    anchors = {stride: (640 // stride) ** 2 * 2 for stride in strides}
    centre_anchor = ((320 // 32) * (640 // 32) + (320 // 32)) * 2
    values: dict[str, np.ndarray] = {}
    for stride in strides:
        count = anchors[stride]
        scores = np.zeros((count, 1), dtype=np.float32)
        boxes = np.zeros((count, 4), dtype=np.float32)
        points = np.zeros((count, 10), dtype=np.float32)
        if stride == 32:
            left, top, right, bottom = SCRFD_BOX
            scores[centre_anchor, 0] = SCRFD_SCORE
            boxes[centre_anchor] = np.array([320 - left, 320 - top, right - 320, bottom - 320]) / stride
            points[centre_anchor] = (np.array(SCRFD_POINTS) - 320.0).reshape(-1) / stride
        values[f"score_{stride}"] = scores
        values[f"bbox_{stride}"] = boxes
        values[f"kps_{stride}"] = points
    order = [f"score_{s}" for s in strides] + [f"bbox_{s}" for s in strides] + [f"kps_{s}" for s in strides]
    for name in order:
        nodes.append(_const(f"{name}_value", values[name]))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name], name=f"out_{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(values[name].shape)))
    graph = helper.make_graph(
        nodes,
        "scrfd_like",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 640, 640])],
        outputs,
    )
    _save(graph, path)
    return path


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
