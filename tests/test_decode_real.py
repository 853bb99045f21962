"""Real photographs (tests/data): the tensor is faithful, deterministic, and turns with the picture.

What is checked, and why:

* Turned copies. A copy whose pixels were turned 90, 180 or 270 degrees (saved as JPEG q95) must
  give the original's tensor turned the same way (``np.rot90``), within MSE 3, and be far (MSE >
  100) from the unturned tensor, so the check proves the turn is seen. The comparer's rotation
  search relies on this; DCT-scaled (draft) decoding breaks it unless the resize uses the box
  ``draft`` returns (the partial edge block lands on another side of a turned copy).
* EXIF-turned copies (Orientation 3, 6, 8): pixels stored turned, the tag telling a viewer how to
  show them upright. They must give the original's tensor and the upright width and height.
* Draft fidelity. The fast draft decode must stay within MSE 3 of a full-resolution decode
  resized the same way, at px 16, 50 and 128.
* Determinism: the same bytes always give the same tensor, whatever the file name.
* Other encodings of one picture: a lossless PNG re-save stays within MSE 1 of the JPEG's tensor;
  a grayscale copy gives three equal channels equal to the colour tensor's luma within MSE 1.
* The comparer, on the tensors of these photos and their variants, equals a brute-force search.

MSE is float64 on the 0-255 scale. Measured on these four photos with Pillow 13.0 (worst photo):
turned copies 0.54 at px 50, 0.80 at px 16; EXIF copies the same (same pixel data); draft vs
full decode 0.46 at px 16 and 0.34 at px 50 (EXIF-6 copies 0.45 and 0.32), 0.0 at px 128 (no
DCT scaling there: 3 x 128 = 384 px is more than the short side of these 640-px photos, so that
check is exact); a turned or EXIF copy vs the unturned tensor >= 2824. A decoder that drops the
draft box measures 30.9 on the turned check and 9.2 on the draft check; one that DCT-scales down
to the target itself (``DRAFT_GAP`` 1) 28.1 and 14.5: the thresholds of 3 catch both widely.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from imgindex import Index
from imgindex.scan.decode import DRAFT_GAP, decode_path

from helpers import best_match, mse

DATA = Path(__file__).parent / "data"
PHOTOS = sorted(DATA.glob("*.jpg"))
TOLERANCE = 3.0  # max MSE for "the same picture" after a lossy re-encode (measured <= 0.80)
DIFFERENT = 100.0  # min MSE for "a different picture" (measured >= 2824 between turns)

# Pillow's ROTATE_90 turns counter-clockwise, as np.rot90 with k=1 does (checked below), so
# transposing with ROTATE_90 * k must give np.rot90(tensor, k).
CCW = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}

# Orientation tag -> how to store an upright picture's pixels so that a viewer, applying the tag,
# shows it upright. 6 means "turn 90 clockwise to display", so the pixels are stored turned 90
# counter-clockwise (ROTATE_90); 8 is the opposite; 3 is half a turn.
STORED_FOR_ORIENTATION = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}


def tensor(path: Path, px: int = 50) -> np.ndarray:
    decoded = decode_path(str(path), px)
    return np.frombuffer(decoded.tensor, np.uint8).reshape(px, px, 3)


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def save_jpeg(img: Image.Image, path: Path, **save) -> Path:
    img.save(path, "JPEG", quality=95, **save)
    return path


def exif_rotated_copy(photo: Path, orientation: int, path: Path) -> Path:
    """The photo's pixels stored turned, with an Orientation tag that turns them back upright."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save_jpeg(load_rgb(photo).transpose(STORED_FOR_ORIENTATION[orientation]), path, exif=exif)


def small(img: Image.Image, px: int = 50) -> np.ndarray:
    return np.asarray(img.resize((px, px), Image.Resampling.BICUBIC))


def full_reference(path: Path, px: int) -> np.ndarray:
    """The slow, obvious tensor: full decode, RGB, EXIF applied, one bicubic resize."""
    with Image.open(path) as im:
        im.load()
        upright = ImageOps.exif_transpose(im.convert("RGB"))
    return small(upright, px)


def test_there_are_real_photos():
    assert len(PHOTOS) >= 4 and (DATA / "SOURCES.md").exists()


def test_the_rotation_conventions_these_tests_use():
    grid = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for k, transpose in CCW.items():
        assert np.array_equal(np.asarray(Image.fromarray(grid).transpose(transpose)), np.rot90(grid, k))
    assert np.array_equal(np.rot90(grid, 1)[0], grid[:, -1])  # k=1: the right column goes on top


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("k", [1, 2, 3], ids=["ccw90", "180", "ccw270"])
@pytest.mark.parametrize("px", [50, 16])
def test_turned_copy_gives_the_turned_tensor(photo, k, px, tmp_path):
    original = tensor(photo, px)
    turned = tensor(save_jpeg(load_rgb(photo).transpose(CCW[k]), tmp_path / f"turned{k}.jpg"), px)
    assert mse(turned, np.rot90(original, k)) <= TOLERANCE
    assert mse(turned, original) > DIFFERENT  # the turn is real: unturned, they differ a lot


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_rotated_copy_gives_the_upright_tensor(photo, orientation, tmp_path):
    upright = load_rgb(photo)
    copy = exif_rotated_copy(photo, orientation, tmp_path / f"exif{orientation}.jpg")
    # The fixture is what it claims: Pillow's own viewer-style transpose shows it upright
    # (compared at 50 px: measured <= 0.29; at full size the q95 re-encode alone costs up to 4.0) ...
    with Image.open(copy) as stored:
        raw = stored.convert("RGB")
        shown = ImageOps.exif_transpose(stored).convert("RGB")
    assert shown.size == upright.size
    assert mse(small(shown), small(upright)) <= TOLERANCE
    # ... and ignoring the tag would give a different picture.
    assert mse(small(raw), tensor(photo)) > DIFFERENT

    decoded = decode_path(str(copy), 50)
    assert mse(tensor(copy), tensor(photo)) <= TOLERANCE
    assert (decoded.width, decoded.height) == upright.size


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("px", [16, 50, 128])
def test_draft_decoding_stays_close_to_a_full_decode(photo, px):
    with Image.open(photo) as im:
        full_size = im.size
        im.draft("RGB", (px * DRAFT_GAP, px * DRAFT_GAP))
        drafted_size = im.size
    if px < 128:  # these 640-px photos are DCT-scaled at px 16 and 50: the draft path is what is tested
        assert drafted_size[0] < full_size[0]
    assert mse(tensor(photo, px), full_reference(photo, px)) <= TOLERANCE


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("px", [16, 50])
def test_draft_decoding_of_an_exif_rotated_copy_stays_close_to_a_full_decode(photo, px, tmp_path):
    copy = exif_rotated_copy(photo, 6, tmp_path / "exif6.jpg")
    assert mse(tensor(copy, px), full_reference(copy, px)) <= TOLERANCE


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
def test_same_file_same_tensor(photo, tmp_path):
    copy = tmp_path / "renamed copy.jpeg"
    shutil.copy(photo, copy)
    first = tensor(photo).tobytes()
    assert tensor(photo).tobytes() == first
    assert tensor(copy).tobytes() == first


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("px", [16, 50, 128])
def test_png_resave_gives_the_jpeg_tensor(photo, px, tmp_path):
    # Measured: <= 0.46 (px 16), <= 0.34 (px 50), 0.0 (px 128): the PNG holds the JPEG's decoded
    # pixels, so the only difference is the JPEG's draft (DCT-scaled) decode.
    png = tmp_path / "resaved.png"
    load_rgb(photo).save(png)
    assert decode_path(str(png), px).format == "PNG"
    assert mse(tensor(png, px), tensor(photo, px)) <= 1.0


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
def test_grayscale_copy_gives_the_luma_of_the_colour_tensor(photo, tmp_path):
    # Measured: the three channels are identical; MSE to the colour tensor's luma <= 0.22.
    gray = save_jpeg(load_rgb(photo).convert("L"), tmp_path / "gray.jpg")
    with Image.open(gray) as im:
        assert im.mode == "L"
    t = tensor(gray)
    assert np.array_equal(t[..., 0], t[..., 1]) and np.array_equal(t[..., 0], t[..., 2])
    luma = np.asarray(Image.fromarray(tensor(photo)).convert("L"))
    assert mse(t[..., 0], luma) <= 1.0


def variants(folder: Path) -> None:
    """Each photo with copies a user really has: re-encoded, PNG, turned, EXIF-turned, smaller, mirrored."""
    for photo in PHOTOS:
        with Image.open(photo) as im:
            img = im.convert("RGB")
        stem = photo.stem
        shutil.copy(photo, folder / f"{stem}.jpg")
        img.save(folder / f"{stem}-q60.jpg", quality=60)
        img.save(folder / f"{stem}.png")
        img.transpose(Image.Transpose.ROTATE_270).save(folder / f"{stem}-turned.jpg", quality=92)
        exif = Image.Exif()
        exif[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(folder / f"{stem}-exif.jpg", quality=92, exif=exif)
        img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS).save(folder / f"{stem}-half.jpg")
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / f"{stem}-mirror.jpg", quality=92)


@pytest.mark.parametrize(
    "similarity, rotate, mirror, same_dim",
    [(0, True, False, True), (1.5, True, False, True), (20, True, True, False), (300, False, False, False),
     (2500, True, True, True)],
)
def test_search_on_real_photos_equals_brute_force(tmp_path, similarity, rotate, mirror, same_dim):
    folder = tmp_path / "photos"
    folder.mkdir()
    variants(folder)
    with Index(tmp_path / "i.db") as index:
        index.scan([folder], processes=1)
        report = index.search(similarity=similarity, rotate=rotate, mirror=mirror, same_dim=same_dim, processes=1)
        rows = index.db.execute(
            "SELECT i.id, i.width, i.height, v.tensor FROM images i JOIN vectors v ON v.image_id = i.id"
        ).fetchall()
        stored = {
            (a, b): (mse_, rot, bool(mir))
            for a, b, mse_, rot, mir in index.db.execute(
                "SELECT image_a, image_b, mse, rotation, mirrored FROM pairs WHERE search_id = ?", [report.search_id]
            )
        }
    tensors = {i: np.frombuffer(t, np.uint8).reshape(50, 50, 3) for i, _, _, t in rows}
    dims = {i: tuple(sorted((w, h))) for i, w, h, _ in rows}
    expected = {}
    for a in sorted(tensors):
        for b in sorted(tensors):
            if b <= a or (same_dim and dims[a] != dims[b]):
                continue
            best = best_match(tensors[a], tensors[b], rotate, mirror)
            if best[0] <= similarity:
                expected[(a, b)] = best
    assert stored == expected
    if similarity == 1.5:  # the copies that should be near-identical are found
        assert len(expected) >= 3 * len(PHOTOS)
