"""HEIC/HEIF and AVIF are first-class images: read by content, upright, deep colour and alpha handled,
one group with their JPEG and PNG copies; broken ones recorded; videos and RAW counted as skipped.

Fixtures are the real photos of tests/data and two real HEIC files from the pillow-heif project
(tests/data/SOURCES.md), re-encoded here with pillow-heif's and Pillow's own encoders."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from imgindex import Index
from imgindex.scan.decode import decode_path, thumbnail_jpeg

from helpers import STORED, invoke, mse

DATA = Path(__file__).parent / "data"
PHOTO = DATA / "kingfisher.jpg"  # 640x360, real
TOLERANCE = 4.6  # MSE: README's p95 for a JPEG re-encode at quality 50; lossy HEIC copies stay under it


def tensor(path) -> np.ndarray:
    return np.frombuffer(decode_path(str(path), 50).tensor, np.uint8).reshape(50, 50, 3)


def scan_in_a_fresh_interpreter(prelude: str, db: Path, root: Path, show: str) -> str:
    """Scan ``root`` in a new Python that first runs ``prelude`` (a module hidden, a limit lowered);
    what it prints of ``show``, an expression of the report ``r`` and the index ``ix``."""
    script = (f"{prelude}\nfrom imgindex import Index\nwith Index({str(db)!r}) as ix:\n"
              f"    r = ix.scan([{str(root)!r}], processes=1)\n    print({show})\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def save_heif(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="HEIF", quality=options.pop("quality", 90), **options)
    return path


def test_a_heic_in_every_orientation_decodes_upright_like_its_jpeg(tmp_path):
    upright = Image.open(PHOTO).convert("RGB")
    reference = tensor(PHOTO)
    for orientation, stored in STORED.items():
        pixels = upright if stored is None else upright.transpose(stored)
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = save_heif(pixels, tmp_path / f"o{orientation}.heic", exif=exif.tobytes())
        got = tensor(path)
        assert mse(got, reference) < TOLERANCE, orientation  # applied exactly once...
        wrong = [mse(np.asarray(Image.fromarray(got).transpose(t)), reference) for t in STORED.values() if t]
        assert min(wrong) > 10 * TOLERANCE  # ...and not twice: every other turn is far off
        assert decode_path(str(path), 50).width == 640


def test_deep_colour_heifs_decode_as_their_8_bit_picture(tmp_path):
    upright = np.asarray(Image.open(PHOTO).convert("RGB"))
    reference = tensor(PHOTO)
    for bits in (10, 12):
        pillow_heif.options.SAVE_HDR_TO_12_BIT = bits == 12
        try:
            deep = pillow_heif.from_bytes(mode="RGB;16", size=(upright.shape[1], upright.shape[0]),
                                          data=(upright.astype(np.uint16) * 257).tobytes())
            deep.save(tmp_path / f"deep{bits}.heic", quality=95)
        finally:
            pillow_heif.options.SAVE_HDR_TO_12_BIT = False
        assert Image.open(tmp_path / f"deep{bits}.heic").info["bit_depth"] == bits
        assert mse(tensor(tmp_path / f"deep{bits}.heic"), reference) < TOLERANCE


def test_alpha_is_composited_on_white_as_for_png(tmp_path):
    rgba = Image.open(PHOTO).convert("RGBA")
    alpha = np.zeros((360, 640), np.uint8)
    alpha[:, 320:] = 255  # the left half transparent
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "a.png")
    save_heif(rgba, tmp_path / "a.heic", quality=95)
    got, png = tensor(tmp_path / "a.heic"), tensor(tmp_path / "a.png")
    assert mse(got, png) < TOLERANCE and got[:, :20].min() > 240  # white where transparent


def test_real_heic_files_decode_their_primary_image(tmp_path):
    three = pillow_heif.open_heif(DATA / "zPug_3.heic")
    assert len(three) == 3
    primary = three[three.primary_index].to_pillow()
    primary.save(tmp_path / "primary.png")
    assert (decode_path(str(DATA / "zPug_3.heic"), 50).width, decode_path(str(DATA / "zPug_3.heic"), 50).height) \
        == primary.size
    assert mse(tensor(DATA / "zPug_3.heic"), tensor(tmp_path / "primary.png")) == 0
    big_thumbnail = decode_path(str(DATA / "invalid_id.heic"), 50)  # its thumbnail (1227 px) is not used
    assert (big_thumbnail.width, big_thumbnail.height, big_thumbnail.format) == (564, 870, "HEIF")


def test_heic_avif_png_and_jpeg_copies_are_one_group_and_names_do_not_decide(tmp_path):
    root = tmp_path / "phone"
    root.mkdir()
    upright = Image.open(PHOTO).convert("RGB")
    shutil.copy2(PHOTO, root / "IMG_0001.jpg")
    save_heif(upright, root / "IMG_0001.HEIC")
    upright.save(root / "IMG_0001.avif", quality=90)
    upright.save(root / "export.png")
    save_heif(upright, root / "heic-named.jpg", quality=80)  # a HEIC called .jpg
    shutil.copy2(DATA / "cat.jpg", root / "jpeg-named.heic")  # a JPEG called .heic
    with Index(tmp_path / "i.db") as index:
        report = index.scan([root], processes=1)
        assert (report.added, report.failed) == (6, 0)
        formats = dict(index.db.execute("SELECT path, format FROM images").fetchall())
        assert formats[str(root / "heic-named.jpg")] == "HEIF" and formats[str(root / "jpeg-named.heic")] == "JPEG"
        assert formats[str(root / "IMG_0001.avif")] == "AVIF"
        index.search(similarity="similar", processes=1)
        (group,) = {tuple(sorted(m for m, _ in ms) + [k]) for k, ms in index.result().items()}
        assert sorted(Path(p).name for p in group) == ["IMG_0001.HEIC", "IMG_0001.avif", "IMG_0001.jpg",
                                                       "export.png", "heic-named.jpg"]


def test_broken_heic_and_avif_files_are_recorded_not_indexed(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    good = save_heif(Image.open(PHOTO).convert("RGB"), tmp_path / "good.heic").read_bytes()
    Image.open(PHOTO).convert("RGB").save(tmp_path / "good.avif")
    avif = (tmp_path / "good.avif").read_bytes()
    (root / "empty.heic").write_bytes(b"")
    (root / "truncated.heic").write_bytes(good[: len(good) // 3])
    (root / "corrupt.heic").write_bytes(good[:40] + bytes(len(good) - 40))
    (root / "truncated.avif").write_bytes(avif[: len(avif) // 3])
    (root / "ok.heic").write_bytes(good)
    with Index(tmp_path / "i.db") as index:
        report = index.scan([root], processes=1)
        assert report.status == "completed" and report.added == 1
        errors = dict(index.db.execute("SELECT path, error_class FROM scan_errors").fetchall())
    assert set(errors) == {str(root / n) for n in ("empty.heic", "truncated.heic", "corrupt.heic", "truncated.avif")}
    assert errors[str(root / "empty.heic")] == "empty_file"
    assert all(c in ("truncated", "corrupt", "not_an_image") for c in errors.values() if c != "empty_file")


def test_without_pillow_heif_heic_files_are_reported_with_the_fix_and_the_scan_goes_on(tmp_path):
    root = tmp_path / "phone"
    save_heif(Image.open(PHOTO).convert("RGB"), root / "IMG_0002.heic")
    shutil.copy2(DATA / "cat.jpg", root / "cat.jpg")
    shown = scan_in_a_fresh_interpreter("import sys; sys.modules['pillow_heif'] = None",  # as if not installed
                                        tmp_path / "i.db", root, "r.status, r.added, ix.scan_errors([r.roots[0]])")
    assert shown.startswith("completed 1 ")
    assert "unsupported_format" in shown and "pip install pillow-heif" in shown


def test_videos_and_other_files_are_counted_as_skipped_by_kind(tmp_path):
    """(RAW files without the [raw] extra: tests/test_raw.py.)"""
    root = tmp_path / "camera"
    root.mkdir()
    shutil.copy2(PHOTO, root / "IMG_0003.jpg")
    for name in ("IMG_0003.MOV", "clip.mp4", "notes.txt"):
        (root / name).write_bytes(b"\x00" * 32)
    ran = invoke("scan", str(root), "--db", str(tmp_path / "i.db"))
    assert ran.returncode == 0
    (line,) = [line for line in ran.stdout.splitlines() if line.strip().startswith("skipped")]
    assert "2 video (not read); 1 extension not an image format" in line


def test_the_report_can_show_a_heic(tmp_path):
    path = save_heif(Image.open(PHOTO).convert("RGB"), tmp_path / "a.heic")
    thumb = Image.open(io.BytesIO(thumbnail_jpeg(str(path), 128)))
    assert thumb.format == "JPEG" and max(thumb.size) == 128


@pytest.mark.parametrize("name", ["zPug_3.heic", "invalid_id.heic"])
def test_the_real_files_are_the_ones_sources_md_lists(name):
    import hashlib

    digest = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
    assert digest in (DATA / "SOURCES.md").read_text()


def test_a_heic_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    """Pillow refuses an image over twice MAX_IMAGE_PIXELS at open, from the size in the header, for
    HEIF too: here the limit is lowered so that a 640x360 HEIC stands for a 200-megapixel one."""
    path = save_heif(Image.open(PHOTO).convert("RGB"), tmp_path / "p" / "huge.heic")
    shown = scan_in_a_fresh_interpreter("import PIL.Image; PIL.Image.MAX_IMAGE_PIXELS = 10_000", tmp_path / "i.db",
                                        path.parent, "r.status, [e.error_class for e in r.errors]")
    assert shown == "completed ['decompression_bomb']"


def test_jpeg_xl_with_the_extra_is_a_picture_and_without_it_is_skipped_with_the_hint(tmp_path):
    import pillow_jxl  # noqa: F401  (the [jxl] extra, installed by the test extra)

    root = tmp_path / "jxl"
    root.mkdir()
    shutil.copy2(PHOTO, root / "photo.jpg")
    Image.open(PHOTO).convert("RGB").save(root / "photo.jxl", quality=90, lossless_jpeg=False)
    with Index(tmp_path / "i.db") as index:
        assert index.scan([root], processes=1).added == 2
        index.search(similarity="similar", processes=1)
        assert sorted(Path(p).name for k, ms in index.result().items() for p in [k, *(m for m, _ in ms)]) == [
            "photo.jpg", "photo.jxl"]
    shown = scan_in_a_fresh_interpreter("import sys; sys.modules['pillow_jxl'] = None",  # as without the extra
                                        tmp_path / "j.db", root, "r.added, [s.reason for s in r.skipped_files]")
    assert shown == "1 [\"JPEG XL (not read: pip install 'imgindex[jxl]')\"]"


@pytest.mark.slow
def test_a_heic_dropped_into_a_watched_folder_joins_its_jpeg_within_seconds(tmp_path):
    import time

    from test_watch import wait_for, watching

    root, db = tmp_path / "photos", tmp_path / "w.db"
    root.mkdir()
    shutil.copy2(PHOTO, root / "IMG_0007.jpg")
    with watching(root, db, "--similarity", "similar") as proc:
        started = time.monotonic()
        save_heif(Image.open(PHOTO).convert("RGB"), tmp_path / "IMG_0007.HEIC")
        shutil.move(tmp_path / "IMG_0007.HEIC", root / "IMG_0007.HEIC")  # as a phone sync drops it in
        pairs = wait_for(db, "SELECT path_a, path_b FROM match_pairs", lambda r: len(r) == 1, proc=proc)
        assert {Path(p).name for p in pairs[0]} == {"IMG_0007.jpg", "IMG_0007.HEIC"}
        assert time.monotonic() - started < 15
