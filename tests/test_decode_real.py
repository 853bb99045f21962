"""Real photographs (tests/data): the tensor is faithful, deterministic, and turns with the picture.

Draft (DCT-scaled) JPEG decoding is what makes indexing fast; these tests hold it to the full
decode, and hold rotated and EXIF-rotated copies to the rotated tensor of the original, within
an MSE of 3 (0-255 scale). Measured on these photos: rotations <= 0.54 (JPEG q95 copies), EXIF
copies <= 0.54, draft vs full decode <= 0.46. Then the comparer, on the tensors these photos and
their variants produce, must equal a brute-force search.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgindex import Index
from imgindex.decode import decode_image, decode_path

from conftest import best_match, mse

DATA = Path(__file__).parent / "data"
PHOTOS = sorted(DATA.glob("*.jpg"))
TURNS = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}  # clockwise
EXIF_STORED = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}


def tensor(source, px: int = 50) -> np.ndarray:
    if isinstance(source, (bytes, bytearray)):
        decoded = decode_image(io.BytesIO(source), px)
    else:
        decoded = decode_path(str(source), px)
    return np.frombuffer(decoded.tensor, np.uint8).reshape(px, px, 3)


def jpeg_bytes(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **save)
    return buf.getvalue()


def test_there_are_real_photos():
    assert len(PHOTOS) >= 4 and (DATA / "SOURCES.md").exists()


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("clockwise", [90, 180, 270])
def test_turned_copy_gives_the_turned_tensor(photo, clockwise):
    original = tensor(photo)
    with Image.open(photo) as im:
        turned = tensor(jpeg_bytes(im.convert("RGB").transpose(TURNS[clockwise])))
    expected = np.rot90(original, k=-(clockwise // 90))  # np.rot90 turns counter-clockwise
    assert mse(turned, expected) <= 3.0
    assert mse(turned, original) > 100  # the rotation is real: unturned, they differ a lot


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_copy_gives_the_upright_tensor(photo, orientation):
    original = tensor(photo)
    with Image.open(photo) as im:
        upright = im.convert("RGB")
        exif = Image.Exif()
        exif[0x0112] = orientation  # the stored pixels are turned; the tag tells viewers to undo it
        data = jpeg_bytes(upright.transpose(EXIF_STORED[orientation]), exif=exif)
    assert mse(tensor(data), original) <= 3.0
    decoded = decode_image(io.BytesIO(data), 50)
    assert (decoded.width, decoded.height) == upright.size
    with Image.open(io.BytesIO(data)) as stored:
        raw = np.asarray(stored.convert("RGB").resize((50, 50), Image.Resampling.BICUBIC))
    assert mse(raw, original) > 100  # ignoring the tag would have been wrong


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("px", [16, 50, 128])
def test_draft_decoding_stays_close_to_a_full_decode(photo, px):
    with Image.open(photo) as im:
        full = np.asarray(im.convert("RGB").resize((px, px), Image.Resampling.BICUBIC))
    assert mse(tensor(photo, px), full) <= 3.0


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
def test_same_file_same_tensor(photo, tmp_path):
    copy = tmp_path / "renamed copy.jpg"
    shutil.copy(photo, copy)
    assert tensor(photo).tobytes() == tensor(photo).tobytes() == tensor(copy).tobytes()


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
