"""Turn what a user hands us (a path or bytes) into an upright 8-bit RGB pixel array.

Every failure, whatever Pillow raises underneath, becomes an ``ImageError`` that names the input.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from veilface.crypto import ImageError

ImageSource = Union[str, "os.PathLike[str]", bytes]

#: Longest side, in pixels, of the copy that face detectors see; larger images are shrunk for detection only.
DETECTION_MAX_SIDE = 1024

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def describe_source(source: ImageSource) -> str:
    """A short name for the input in messages: its path, or the size of the bytes."""
    if isinstance(source, bytes):
        return f"image bytes ({len(source)} bytes)"
    return os.fspath(source)


def read_image(source: ImageSource) -> np.ndarray:
    """Decode a path or encoded bytes to an H x W x 3 uint8 RGB array, upright per its EXIF orientation."""
    name = describe_source(source)
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot read {name}: {exc.strerror or exc}") from exc
    return decode_image(data, name)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG and whatever else Pillow reads) to upright 8-bit RGB."""
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            upright = ImageOps.exif_transpose(opened)
            return _to_rgb(upright)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} has too many pixels to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not an image format veilface can read (use JPEG or PNG)") from exc
    # Pillow's decoders raise many unrelated types on damaged files (OSError, SyntaxError, struct.error, ...).
    except Exception as exc:
        raise ImageError(f"{name} is corrupt or truncated ({type(exc).__name__}: {exc})") from exc


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow's convert("L") clips 16-bit levels at 255 (a white image); rescale the full range instead.
        # Mode "I" is 32-bit: levels beyond 16 bits (a TIFF, say) are scaled by their own maximum.
        levels = np.asarray(image).astype(np.float64)
        top = float(levels.max()) if levels.size else 0.0
        gray = np.clip(np.rint(levels / (257.0 if top <= 65535 else top / 255.0)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        # Transparent pixels carry arbitrary colour; a white backdrop looks like a photo studio wall.
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(backdrop, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def detection_view(rgb: np.ndarray, max_side: int = DETECTION_MAX_SIDE) -> tuple[np.ndarray, float]:
    """A copy no longer than ``max_side`` on either side, and the factor from original to copy coordinates.

    Detection cost grows with the pixel count; landmarks and embeddings still use the original pixels.
    """
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return rgb, 1.0
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.ascontiguousarray(np.asarray(small)), scale
