"""Camera RAW files (the extra imgindex[raw], rawpy/LibRaw): indexed upright, kept over their JPEG,
moved, trashed and put back together with their XMP sidecars; broken ones recorded.

The DNGs are real photos (tests/data) written as Bayer mosaics with pidng, a DNG writer."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image

from imgindex import Index
from imgindex.scan.decode import decode_path

from dng_preview import write_dng
from helpers import STORED, contents, mse

DATA = Path(__file__).parent / "data"


def make_dng(rgb: np.ndarray, path: Path, orientation: int = 1, preview: Image.Image | bytes | None = None) -> Path:
    """A DNG whose sensor saw ``rgb`` (RGGB mosaic, 12-bit), with an Orientation tag; with ``preview``
    (a picture, saved as JPEG quality 90, or a JPEG's bytes) embedded as a camera embeds its own."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CFAPattern, CalibrationIlluminant, DNGVersion, PhotometricInterpretation

    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    values = rgb[:h, :w].astype(np.uint16) * 16
    bayer = np.zeros((h, w), np.uint16)
    bayer[0::2, 0::2], bayer[0::2, 1::2] = values[0::2, 0::2, 0], values[0::2, 1::2, 1]
    bayer[1::2, 0::2], bayer[1::2, 1::2] = values[1::2, 0::2, 1], values[1::2, 1::2, 2]
    if preview is not None:
        jpeg = preview if isinstance(preview, bytes) else jpeg_bytes(preview)
        return write_dng(bayer, path, orientation, jpeg, Image.open(io.BytesIO(jpeg)).size)
    tags = DNGTags()
    for tag, value in [(Tag.ImageWidth, w), (Tag.ImageLength, h), (Tag.TileWidth, w), (Tag.TileLength, h),
                       (Tag.Orientation, orientation), (Tag.SamplesPerPixel, 1), (Tag.BitsPerSample, 16),
                       (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
                       (Tag.CFARepeatPatternDim, [2, 2]), (Tag.CFAPattern, CFAPattern.RGGB), (Tag.BlackLevel, 0),
                       (Tag.WhiteLevel, 4095), (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65),
                       (Tag.ColorMatrix1, [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]]),
                       (Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]]), (Tag.Make, "imgindex"), (Tag.Model, "test"),
                       (Tag.DNGVersion, DNGVersion.V1_4), (Tag.DNGBackwardVersion, DNGVersion.V1_2)]:
        tags.set(tag, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    writer.convert(bayer, filename=str(path.with_suffix("")))
    return path


def jpeg_bytes(picture: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


def photo(name: str = "kingfisher.jpg") -> np.ndarray:
    return np.asarray(Image.open(DATA / name).convert("RGB"))


def tensor(path) -> np.ndarray:
    return np.frombuffer(decode_path(str(path), 50).tensor, np.uint8).reshape(50, 50, 3)


def rendering(dng: Path) -> Image.Image:
    """What a camera's own JPEG of the shot looks like: LibRaw's rendering of the same data."""
    with rawpy.imread(str(dng)) as raw:
        return Image.fromarray(raw.postprocess(use_camera_wb=True, output_bps=8))


def test_a_dng_is_read_upright_whatever_its_orientation_tag(tmp_path):
    upright = make_dng(photo(), tmp_path / "upright.dng")
    reference = tensor(upright)
    turns = {6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180, 8: Image.Transpose.ROTATE_270}
    for orientation, stored in turns.items():
        pixels = np.asarray(Image.fromarray(photo()).transpose(stored))
        path = make_dng(pixels, tmp_path / f"o{orientation}.dng", orientation)
        decoded = decode_path(str(path), 50)
        assert (decoded.width, decoded.height, decoded.format) == (640, 360, "DNG")
        assert mse(tensor(path), reference) < 4.6, orientation


def test_a_raw_keeps_over_its_larger_jpeg_and_their_shared_sidecar_stays(tmp_path):
    shot = tmp_path / "camera"
    dng = make_dng(photo(), shot / "IMG_0001.dng")
    rendering(dng).resize((1280, 720), Image.Resampling.BICUBIC).save(shot / "IMG_0001.jpg", quality=92)
    (shot / "IMG_0001.xmp").write_text("<x:xmpmeta>the edits of IMG_0001</x:xmpmeta>")
    before = contents(shot)
    with Index(tmp_path / "i.db") as index:
        index.scan([shot], processes=1)
        index.search(similarity="similar", same_dim=False, processes=1)
        assert list(index.result()) == [str(dng)]  # the RAW keeps, though the JPEG has four times the pixels
        report = index.move_to(tmp_path / "dups")
        assert [Path(o.source).name for o in report.outcomes if o.outcome == "done"] == ["IMG_0001.jpg"]
    assert (shot / "IMG_0001.xmp").exists()  # it is the RAW's too, and the RAW stays
    assert contents(shot, tmp_path / "dups") == before


def test_a_moved_or_trashed_raw_takes_its_sidecars_and_undo_brings_them_back(tmp_path):
    root = tmp_path / "photos"
    make_dng(photo("cat.jpg"), root / "a" / "IMG_0002.dng")
    (root / "b").mkdir()
    shutil.copy2(root / "a" / "IMG_0002.dng", root / "b" / "IMG_0002.dng")  # b's copy is lower quality (path)
    (root / "b" / "IMG_0002.xmp").write_text("<x:xmpmeta>edits</x:xmpmeta>")
    (root / "b" / "IMG_0002.dng.xmp").write_text("<x:xmpmeta>darktable edits</x:xmpmeta>")
    before = contents(root)
    dest = tmp_path / "dups"
    with Index(tmp_path / "i.db") as index:
        index.scan([root], processes=1)
        index.search(processes=1)
        moved = index.move_to(dest)
        assert sorted(Path(o.destination).name for o in moved.outcomes if o.outcome == "done") == [
            "IMG_0002.dng", "IMG_0002.dng.xmp", "IMG_0002.xmp"]
        assert sorted(p.name for p in (dest / "b").iterdir()) == ["IMG_0002.dng", "IMG_0002.dng.xmp", "IMG_0002.xmp"]
        assert contents(root, dest) == before
        index.undo()
        assert contents(root) == before and not any(dest.rglob("*.xmp"))
        index.search(processes=1)
        trashed = index.delete()
        assert trashed.done == 3 and not any((root / "b").iterdir())
        index.undo()
    assert contents(root) == before


def test_a_sidecar_stays_with_a_picture_that_is_left_alone(tmp_path):
    root = tmp_path / "photos"
    make_dng(photo("castle.jpg"), root / "a" / "IMG_0003.dng")
    (root / "b").mkdir()
    shutil.copy2(root / "a" / "IMG_0003.dng", root / "b" / "IMG_0003.dng")
    (root / "b" / "IMG_0003.xmp").write_text("<x:xmpmeta>edits</x:xmpmeta>")
    with Index(tmp_path / "i.db") as index:
        index.scan([root], processes=1)
        index.search(processes=1)
        plan = index.plan_move_to(tmp_path / "dups")
        with open(root / "b" / "IMG_0003.dng", "r+b") as fp:  # changed after the search: left alone
            fp.seek(-1, 2)
            fp.write(b"\x01")
        report = index.apply(plan)
    assert report.done == 0 and report.skipped == 2
    assert "was left alone" in [o.message for o in report.outcomes if o.source.endswith(".xmp")][0]
    assert (root / "b" / "IMG_0003.xmp").exists()


def test_broken_raw_files_are_recorded_not_indexed(tmp_path):
    root = tmp_path / "raw"
    good = make_dng(photo(), tmp_path / "good.dng").read_bytes()
    root.mkdir()
    (root / "empty.dng").write_bytes(b"")
    (root / "not-raw.cr2").write_text("not a raw file")
    (root / "truncated.dng").write_bytes(good[: len(good) // 3])
    with Index(tmp_path / "i.db") as index:
        report = index.scan([root], processes=1)
        errors = dict(index.db.execute("SELECT path, error_class FROM scan_errors").fetchall())
    assert report.status == "completed" and report.added == 0
    # LibRaw tells a truncated RAW from a text file no better than "Input/output error": both corrupt
    assert {Path(p).name: c for p, c in errors.items()} == {"empty.dng": "empty_file", "not-raw.cr2": "corrupt",
                                                            "truncated.dng": "corrupt"}


def test_without_rawpy_raw_files_are_skipped_with_the_install_hint(tmp_path):
    root = tmp_path / "raw"
    make_dng(photo(), root / "IMG_0004.dng")
    script = ("import sys; sys.modules['rawpy'] = None\n"
              "from imgindex import Index\n"
              f"with Index({str(tmp_path / 'i.db')!r}) as ix:\n"
              f"    r = ix.scan([{str(root)!r}], processes=1)\n"
              "    print(r.added, [s.reason for s in r.skipped_files])\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0 [\"RAW camera file (not read: pip install 'imgindex[raw]')\"]"


def test_the_report_shows_a_raw_as_a_jpeg_thumbnail(tmp_path):
    from imgindex.scan.decode import thumbnail_jpeg

    dng = make_dng(photo(), tmp_path / "IMG_0005.dng")
    thumb = Image.open(io.BytesIO(thumbnail_jpeg(str(dng), 128)))
    assert thumb.format == "JPEG" and thumb.size == (128, 72)
    small = np.asarray(thumb.resize((50, 50)))
    assert mse(small, tensor(dng)) < mse(small[::-1, ::-1], tensor(dng)) / 5  # the same picture, upright


def stored(picture: Image.Image, orientation: int) -> Image.Image:
    return picture if STORED[orientation] is None else picture.transpose(STORED[orientation])


def test_a_camera_preview_is_read_in_place_of_the_mosaic_and_turned_once_in_every_orientation(tmp_path):
    from imgindex.scan.raw import RAW_PREVIEW

    upright = Image.fromarray(photo())
    exported = tensor(DATA / "kingfisher.jpg")  # the camera's JPEG of the shot
    for orientation in STORED:
        pixels = stored(upright, orientation)
        path = make_dng(np.asarray(pixels), tmp_path / f"o{orientation}.dng", orientation, preview=pixels)
        decoded = decode_path(str(path), 50)
        assert (decoded.decoder, decoded.width, decoded.height) == (RAW_PREVIEW, 640, 360), orientation
        assert mse(tensor(path), exported) < 1.5, orientation  # a JPEG re-encode apart, upright


def test_a_preview_that_does_not_agree_with_its_raw_is_passed_over_for_the_demosaic(tmp_path):
    from imgindex.scan.raw import RAW_DEMOSAIC

    upright = Image.fromarray(photo())
    plain = tensor(make_dng(photo(), tmp_path / "plain.dng"))
    own_turn = Image.Exif()
    own_turn[0x0112] = 3
    turned = io.BytesIO()
    upright.save(turned, "JPEG", quality=90, exif=own_turn.tobytes())
    app0 = 4 + int.from_bytes(turned.getvalue()[4:6], "big")  # a camera's starts with its EXIF, no JFIF
    turned = io.BytesIO(turned.getvalue()[:2] + turned.getvalue()[app0:])
    png = io.BytesIO()
    upright.save(png, "PNG")
    previews = {"small": jpeg_bytes(upright.resize((160, 90))),  # 90 px: less than a draft's 150 for 50 px
                "cropped": jpeg_bytes(upright.crop((80, 0, 560, 360))),  # 4:3 of a 16:9 frame
                "own-turn": turned.getvalue(),  # says 180 degrees where the RAW says none
                "damaged": jpeg_bytes(upright)[:6000],
                "not-jpeg": png.getvalue()}
    for name, preview in previews.items():
        path = make_dng(photo(), tmp_path / f"{name}.dng", preview=preview)
        assert decode_path(str(path), 50).decoder == RAW_DEMOSAIC, name
        assert np.array_equal(tensor(path), plain), name
    # stored upright already, in a RAW that says it must be turned: its aspect shows it
    pixels = stored(upright, 6)
    path = make_dng(np.asarray(pixels), tmp_path / "turned-already.dng", 6, preview=upright)
    assert decode_path(str(path), 50).decoder == RAW_DEMOSAIC
    with Index(tmp_path / "i.db") as index:
        report = index.scan([tmp_path], processes=1)
    assert report.failed == 0 and report.added == 7


def test_a_raw_and_the_cameras_jpeg_of_the_shot_are_one_group_with_the_raw_kept(tmp_path):
    shot = tmp_path / "camera"
    picture = Image.fromarray(photo("cat.jpg"))
    dng = make_dng(photo("cat.jpg"), shot / "IMG_0006.dng", preview=picture.resize((320, 240)))
    picture.resize((1280, 960), Image.Resampling.BICUBIC).save(shot / "IMG_0006.jpg", quality=92)
    with Index(tmp_path / "i.db") as index:
        index.scan([shot], processes=1)
        index.search(similarity="similar", same_dim=False, processes=1)
        assert list(index.result()) == [str(dng)]
        assert [Path(p).name for p, _mse in index.result()[str(dng)]] == ["IMG_0006.jpg"]


def test_a_photo_its_heic_avif_and_jpeg_copies_and_its_dng_are_one_group_the_dng_kept(tmp_path):
    from test_formats import save_heif

    root = tmp_path / "shot"
    picture = Image.fromarray(photo())
    dng = make_dng(photo(), root / "IMG_0008.dng", preview=picture.resize((480, 270)))
    picture.save(root / "IMG_0008.jpg", quality=92)
    save_heif(picture, root / "IMG_0008.heic")
    picture.save(root / "IMG_0008.avif", quality=90)
    with Index(tmp_path / "i.db") as index:
        index.scan([root], processes=1)
        index.search(similarity="similar", same_dim=False, processes=1)
        assert list(index.result()) == [str(dng)]
        assert sorted(Path(p).name for p, _mse in index.result()[str(dng)]) == [
            "IMG_0008.avif", "IMG_0008.heic", "IMG_0008.jpg"]


def test_each_raw_records_its_recipe_and_one_made_by_an_older_recipe_is_read_again(tmp_path):
    from imgindex.scan.decode import DECODER
    from imgindex.scan.raw import RAW_DEMOSAIC, RAW_PREVIEW

    root = tmp_path / "photos"
    make_dng(photo(), root / "preview.dng", preview=Image.fromarray(photo()))
    make_dng(photo("castle.jpg"), root / "plain.dng")
    shutil.copy(DATA / "coral.jpg", root / "coral.jpg")

    def recipes(index):
        return {Path(p).name: d for p, d in index.db.execute("SELECT path, decoder FROM images")}

    with Index(tmp_path / "i.db") as index:
        index.scan([root], processes=1)
        made = recipes(index)
        assert made == {"preview.dng": RAW_PREVIEW, "plain.dng": RAW_DEMOSAIC, "coral.jpg": DECODER}
        again = index.scan([root], processes=1)
        assert (again.unchanged, again.decoded) == (3, 0)
        index.db.execute("UPDATE images SET decoder = ? WHERE path LIKE '%.dng'", [DECODER])  # as before recipes
        index.db.conn.commit()
        redone = index.scan([root], processes=1)
        assert (redone.updated, redone.decoded, redone.unchanged) == (2, 2, 1)
        assert recipes(index) == made
        shutil.copy2(root / "preview.dng", root / "copy.dng")
        copied = index.scan([root], processes=1)
        assert (copied.reused, copied.decoded) == (1, 0) and recipes(index)["copy.dng"] == RAW_PREVIEW


def test_the_report_thumbnail_of_a_raw_is_its_preview_upright(tmp_path):
    from imgindex.scan.decode import thumbnail_jpeg

    upright = Image.fromarray(photo())
    pixels = stored(upright, 6)
    dng = make_dng(np.asarray(pixels), tmp_path / "IMG_0007.dng", 6, preview=pixels)
    thumb = Image.open(io.BytesIO(thumbnail_jpeg(str(dng), 128)))
    assert thumb.format == "JPEG" and thumb.size == (128, 72)
    small, expected = np.asarray(thumb), np.asarray(upright.resize((128, 72)))
    assert mse(small, expected) < mse(small, expected[::-1, ::-1]) / 5  # the same picture, upright


def test_a_raw_cut_short_is_not_read_from_its_preview_but_recorded_as_broken(tmp_path):
    from imgindex.scan import tiff

    whole = make_dng(photo(), tmp_path / "whole.dng", preview=Image.fromarray(photo())).read_bytes()
    assert tiff.data_end(whole) == len(whole)  # the mosaic is last: every cut loses some of it
    root = tmp_path / "cut"
    root.mkdir()
    for keep in (0.2, 0.6, 0.999):  # the IFDs and the preview are all in the first 10%
        (root / f"cut-{keep}.dng").write_bytes(whole[: int(len(whole) * keep)])
    with Index(tmp_path / "i.db") as index:
        report = index.scan([root], processes=1)
        errors = dict(index.db.execute("SELECT path, error_class FROM scan_errors").fetchall())
    assert report.added == 0 and report.failed == 3
    assert set(errors.values()) == {"corrupt"}
