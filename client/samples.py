"""Real face photos that installed packages ship, and demo cases built from them, found without network.

insightface ships ``data/images/t1.jpg`` (six people) and ``Tom_Hanks_54745.png`` (one aligned face,
112 x 112). They are located through ``importlib`` so that insightface (and OpenCV) are not imported.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from veilface.crypto import ModelNotFoundError

__all__ = ["DemoCase", "demo_cases", "sample_images"]

_FILES = {"t1": "t1.jpg", "tom_hanks": "Tom_Hanks_54745.png"}

#: Boxes (left, top, right, bottom) of three of the six faces in t1.jpg, as dlib's detector finds them.
_T1_FACES = {
    "top_right": (879, 82, 990, 195),
    "centre_left": (455, 295, 568, 406),
    "back_left": (265, 172, 359, 266),
}


@dataclass(frozen=True)
class DemoCase:
    """Two photos to enrol and verify, and whether they show the same person."""

    name: str
    enrol_image: bytes
    probe_image: bytes
    expected_match: bool


def sample_images() -> dict[str, Path]:
    """The shipped photos by name: ``t1`` (six faces) and ``tom_hanks`` (one face)."""
    spec = importlib.util.find_spec("insightface")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelNotFoundError("the sample photos ship with the insightface package: pip install insightface")
    folder = Path(locations[0]) / "data" / "images"
    paths = {name: folder / file for name, file in _FILES.items()}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise ModelNotFoundError(f"insightface's sample photos are missing: {', '.join(missing)}")
    return paths


def demo_cases() -> list[DemoCase]:
    """Two genuine and two impostor cases, each image holding exactly one face wider than 64 px.

    Genuine: Tom Hanks against a mirrored, enlarged, JPEG-recompressed copy of his photo; a face from
    t1.jpg against a mirrored, differently framed crop of itself. Impostor: Tom Hanks against a face from
    t1.jpg; two different people from t1.jpg. Crops are enlarged twofold so dlib's detector finds them.
    """
    paths = sample_images()
    with Image.open(paths["tom_hanks"]) as opened:
        tom = opened.convert("RGB")
    with Image.open(paths["t1"]) as opened:
        group = opened.convert("RGB")
    tom_copy = ImageOps.mirror(tom).resize((tom.width * 2, tom.height * 2), Image.Resampling.BICUBIC)
    top_right = _crop(group, _T1_FACES["top_right"], margin=0.6)
    top_right_again = ImageOps.mirror(_crop(group, _T1_FACES["top_right"], margin=0.9))
    return [
        DemoCase("genuine: Tom Hanks, mirrored, enlarged and re-compressed", _png(tom), _jpeg(tom_copy, 70), True),
        DemoCase(
            "genuine: one face from t1.jpg, mirrored and framed differently",
            _png(top_right),
            _jpeg(top_right_again, 80),
            True,
        ),
        DemoCase("impostor: Tom Hanks against a face from t1.jpg", _png(tom), _png(top_right), False),
        DemoCase(
            "impostor: two different people from t1.jpg",
            _png(_crop(group, _T1_FACES["centre_left"], 0.6)),
            _png(_crop(group, _T1_FACES["back_left"], 0.6)),
            False,
        ),
    ]


def _crop(image: Image.Image, box: tuple[int, int, int, int], margin: float) -> Image.Image:
    """The box widened by ``margin`` of its size on every side, then enlarged twofold."""
    left, top, right, bottom = box
    pad_x, pad_y = round((right - left) * margin), round((bottom - top) * margin)
    region = (
        max(left - pad_x, 0),
        max(top - pad_y, 0),
        min(right + pad_x, image.width),
        min(bottom + pad_y, image.height),
    )
    crop = image.crop(region)
    return crop.resize((crop.width * 2, crop.height * 2), Image.Resampling.BICUBIC)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
