"""Every pixel mode becomes RGB in the documented way; orientation and animation are handled."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imgindex.scan.decode import decode_image, read_file

from helpers import mse, photo_like

PX = 16


def tensor(img: Image.Image, fmt: str, **save) -> tuple[np.ndarray, object]:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    buf.seek(0)
    decoded = decode_image(buf, PX)
    return np.frombuffer(decoded.tensor, np.uint8).reshape(PX, PX, 3), decoded


def solid(mode: str, value, size=(40, 30)) -> Image.Image:
    return Image.new(mode, size, value)


@pytest.mark.parametrize(
    "mode, value, fmt, expected",
    [
        ("L", 77, "PNG", (77, 77, 77)),
        ("1", 1, "PNG", (255, 255, 255)),
        ("1", 0, "BMP", (0, 0, 0)),
        ("RGB", (10, 200, 30), "PNG", (10, 200, 30)),
        ("RGBA", (255, 0, 0, 255), "PNG", (255, 0, 0)),
        ("RGBA", (255, 0, 0, 0), "PNG", (255, 255, 255)),  # fully transparent: white
        ("LA", (0, 0), "PNG", (255, 255, 255)),
        ("LA", (0, 255), "PNG", (0, 0, 0)),
        ("I;16", 65535, "PNG", (255, 255, 255)),
        ("I;16", 32896, "PNG", (128, 128, 128)),  # 16-bit scaled by 1/257, not clipped
        ("CMYK", (0, 0, 0, 0), "JPEG", (255, 255, 255)),
        ("CMYK", (0, 255, 255, 0), "TIFF", (255, 0, 0)),
    ],
)
def test_solid_images_of_each_mode(mode, value, fmt, expected):
    got, decoded = tensor(solid(mode, value), fmt)
    assert np.abs(got.astype(int) - np.array(expected)).max() <= 2, (mode, value, got[0, 0])
    assert (decoded.width, decoded.height) == (40, 30)


def test_half_transparent_is_composited_on_white():
    got, _ = tensor(solid("RGBA", (255, 0, 0, 128)), "PNG")
    assert np.abs(got.astype(int) - np.array([255, 127, 127])).max() <= 1


def test_palette_with_transparency_composites_on_white():
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    for x in range(10):
        for y in range(20):
            img.putpixel((x, y), 1)  # left half blue, right half transparent black
    got, _ = tensor(img, "GIF", transparency=0)
    assert tuple(got[PX // 2, 1]) == (0, 0, 255)
    assert tuple(got[PX // 2, PX - 1]) == (255, 255, 255)


def test_palette_without_transparency_keeps_colours():
    rgb = photo_like(3, (48, 48))
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    got, _ = tensor(pal, "PNG")
    ref, _ = tensor(pal.convert("RGB"), "PNG")
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_images_use_the_first_frame(fmt):
    frames = [solid("RGB", (200, 30, 30)), solid("RGB", (30, 30, 200)), solid("RGB", (30, 200, 30))]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    buf.seek(0)
    with Image.open(buf) as check:
        assert getattr(check, "n_frames", 1) == 3  # it really is animated
    buf.seek(0)
    got = np.frombuffer(decode_image(buf, PX).tensor, np.uint8).reshape(PX, PX, 3)
    assert np.abs(got.astype(int) - np.array([200, 30, 30])).max() <= 8


@pytest.mark.parametrize("orientation, k", [(3, 2), (6, 1), (8, 3)])
def test_exif_orientation_is_applied(orientation, k):
    upright = photo_like(7, (64, 48))
    ref, _ = tensor(upright, "PNG")
    # store the pixels as a camera would (rotated), with the tag that tells viewers how to undo it
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    stored = upright.transpose(undo[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    got, decoded = tensor(stored, "PNG", exif=exif)
    assert mse(got, ref) <= 1.0
    assert (decoded.width, decoded.height) == (64, 48)
    raw, _ = tensor(stored, "PNG")  # same pixels without the tag differ: the tag mattered
    assert mse(raw, ref) > 100


def test_decoding_is_deterministic():
    img = photo_like(11, (300, 200))
    a, _ = tensor(img, "JPEG", quality=85)
    b, _ = tensor(img, "JPEG", quality=85)
    assert np.array_equal(a, b)


def test_extreme_shapes_decode(tmp_path):
    one = tmp_path / "one.png"
    solid("RGB", (1, 2, 3), size=(1, 1)).save(one)
    strip = tmp_path / "strip.png"
    solid("RGB", (9, 9, 9), size=(20000, 20)).save(strip)
    for path, size in ((one, (1, 1)), (strip, (20000, 20))):
        result = read_file(str(path), PX)
        assert result.error is None and (result.decoded.width, result.decoded.height) == size
