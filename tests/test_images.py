"""Image decoding: formats, bit depths, alpha, EXIF orientation, downscaling, and clean errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from face_fixtures import encode, exif_rotated_jpeg, jpeg, rgba_png, sixteen_bit_gray_png, sixteen_bit_rgb_png
from PIL import Image

from veilface.client.faces import decode_image, read_image
from veilface.crypto import ImageError


def test_png_path_and_bytes_decode_to_the_same_rgb(tom: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "tom.png"
    path.write_bytes(encode(tom))
    from_path = read_image(path)
    assert from_path.dtype == np.uint8 and from_path.shape == (112, 112, 3)
    assert np.array_equal(from_path, np.asarray(tom))
    assert np.array_equal(read_image(str(path)), from_path)
    assert np.array_equal(read_image(path.read_bytes()), from_path)


def test_jpeg_decodes_close_to_the_original(tom: Image.Image) -> None:
    pixels = read_image(jpeg(tom, 95))
    assert pixels.shape == (112, 112, 3)
    assert np.abs(pixels.astype(int) - np.asarray(tom, dtype=int)).mean() < 4


def test_grayscale_becomes_three_equal_channels(tom: Image.Image) -> None:
    pixels = read_image(encode(tom.convert("L")))
    assert pixels.shape == (112, 112, 3)
    assert np.array_equal(pixels[:, :, 0], np.asarray(tom.convert("L")))
    assert np.array_equal(pixels[:, :, 0], pixels[:, :, 2])


def test_sixteen_bit_grayscale_keeps_its_levels_instead_of_clipping_to_white(tom: Image.Image) -> None:
    pixels = read_image(sixteen_bit_gray_png(tom))
    assert np.array_equal(pixels[:, :, 1], np.asarray(tom.convert("L")))


def test_thirty_two_bit_grayscale_keeps_its_levels(tom: Image.Image, tmp_path: Path) -> None:
    gray = np.asarray(tom.convert("L"), dtype=np.int32)
    wide = Image.fromarray(gray * (1 << 20), mode="I")  # levels up to 2^28: beyond 16 bits
    wide.save(tmp_path / "wide.tiff")
    pixels = read_image(tmp_path / "wide.tiff")
    expected = np.rint(gray * 255.0 / gray.max()).astype(int)
    assert np.abs(pixels[:, :, 0].astype(int) - expected).max() <= 1


def test_sixteen_bit_rgb_keeps_its_colours(tom: Image.Image) -> None:
    assert np.array_equal(read_image(sixteen_bit_rgb_png(tom)), np.asarray(tom))


def test_transparent_pixels_become_white_and_opaque_ones_stay(tom: Image.Image) -> None:
    pixels = read_image(rgba_png(tom))
    assert pixels.shape == (152, 152, 3)
    assert np.all(pixels[:20] == 255) and np.all(pixels[:, -20:] == 255)
    assert np.array_equal(pixels[20:-20, 20:-20], np.asarray(tom))


def test_exif_orientation_is_applied(tom: Image.Image) -> None:
    sideways = exif_rotated_jpeg(tom.crop((0, 0, 112, 80)))
    with Image.open(io.BytesIO(sideways)) as stored:
        assert stored.size == (80, 112)
    pixels = read_image(sideways)
    assert pixels.shape == (80, 112, 3)
    expected = np.asarray(tom.crop((0, 0, 112, 80)), dtype=int)
    assert np.abs(pixels.astype(int) - expected).mean() < 6


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image, just text", "not an image format"),
        (b"\x00" * 64, "not an image format"),
    ],
)
def test_non_images_raise_image_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        read_image(data)


def test_truncated_jpeg_is_reported_as_corrupt(tom: Image.Image) -> None:
    whole = jpeg(tom, 90)
    with pytest.raises(ImageError, match="corrupt or truncated") as caught:
        decode_image(whole[: len(whole) // 2], "half.jpg")
    assert caught.value.message.startswith("half.jpg ")


def test_png_with_a_damaged_body_is_reported_as_corrupt(tom: Image.Image) -> None:
    data = bytearray(encode(tom))
    data[100:140] = b"\xff" * 40
    with pytest.raises(ImageError, match="corrupt or truncated"):
        read_image(bytes(data))


def test_unreadable_paths_raise_image_error_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"cannot read .*missing\.jpg"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png is empty"):
        read_image(empty)
