"""The trimmed signal (scan.borders.content_box, compare.trimmed): uniform borders found to a
fraction of a pixel, the picture inside them kept as a tensor of its own, and searches that pair a
framed picture with its picture (and with nothing else), exact against a brute-force reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from helpers import mse, photo_like
from imgindex import Index
from imgindex.compare import kernel, signals, tone
from imgindex.compare.settings import TRIMMED_THRESHOLD
from imgindex.db.queries import load_tensors
from imgindex.scan.borders import TRIM_KEEP, TRIM_MIN, content_box
from imgindex.scan.decode import decode_path

DATA = Path(__file__).parent / "data"
PHOTOS = ("castle", "cat", "coral", "kingfisher")
BLACK, WHITE = (0, 0, 0), (255, 255, 255)


def framed(im: Image.Image, top=0, bottom=0, left=0, right=0, fill=BLACK) -> Image.Image:
    """``im`` pasted on a canvas of ``fill`` with borders of these many pixels."""
    canvas = Image.new(im.mode, (im.width + left + right, im.height + top + bottom), fill)
    canvas.paste(im, (left, top))
    return canvas


def letterbox(im: Image.Image, share: float = 0.12, fill=BLACK) -> Image.Image:
    bar = round(share * im.height)
    return framed(im, top=bar, bottom=bar, fill=fill)


def pillarbox(im: Image.Image, share: float = 0.12, fill=WHITE) -> Image.Image:
    bar = round(share * im.width)
    return framed(im, left=bar, right=bar, fill=fill)


def as_array(tensor: bytes, px: int = 50) -> np.ndarray:
    return np.frombuffer(tensor, dtype=np.uint8).reshape(px, px, 3)


def photo(name: str) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(DATA / f"{name}.jpg")).convert("RGB")


def symmetric(quarter: Image.Image) -> Image.Image:
    """A picture the same mirrored either way and turned 180 degrees: four copies of ``quarter``."""
    top = np.concatenate([np.asarray(quarter), np.asarray(quarter)[:, ::-1]], axis=1)
    return Image.fromarray(np.concatenate([top, top[::-1]], axis=0))


# ------------------------------------------------------------------ content_box on pixels

PICTURE = (400, 300)
FRAMINGS = {  # the canvas size and where the picture sits on it
    "letterbox": ((400, 400), (0, 50), BLACK),
    "pillarbox": ((560, 300), (80, 0), BLACK),
    "mat": ((480, 380), (40, 40), WHITE),
}


@pytest.mark.parametrize("scale", [1.0, 0.6425, 0.37, 0.813])  # all but 1.0 put the border's end mid-pixel
@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_the_box_is_the_picture_to_a_fraction_of_a_pixel(framing, scale):
    (cw, ch), (x, y), fill = FRAMINGS[framing]
    canvas = framed(photo_like(1, PICTURE), top=y, bottom=ch - y - PICTURE[1], left=x, right=cw - x - PICTURE[0],
                    fill=fill)
    w, h = round(cw * scale), round(ch * scale)
    scaled = canvas.resize((w, h), Image.Resampling.BICUBIC) if scale != 1.0 else canvas
    sx, sy = w / cw, h / ch
    truth = (x * sx, y * sy, (x + PICTURE[0]) * sx, (y + PICTURE[1]) * sy)
    box = content_box(scaled)
    assert box is not None
    assert max(abs(b - t) for b, t in zip(box, truth)) <= 0.3, (box, truth)
    for side, (b, edge) in enumerate(zip(box, (0, 0, w, h))):  # a side without a border is the image's edge
        if truth[side] == edge:
            assert b == edge


def test_a_side_without_a_border_keeps_the_drafted_box_edge():
    canvas = letterbox(photo_like(2, PICTURE))
    box = content_box(canvas, (0.25, 0, canvas.width - 0.5, canvas.height))
    assert box is not None and box[0] == 0.25 and box[2] == canvas.width - 0.5
    assert box[1] == pytest.approx(36, abs=0.3) and box[3] == pytest.approx(336, abs=0.3)


def test_a_border_thinner_than_trim_min_is_left_alone():
    pic = photo_like(3, PICTURE)
    thin = framed(pic, top=4)  # 4 of 304 lines: 1.3% < TRIM_MIN
    thick = framed(pic, top=12)  # 12 of 312: 3.8%
    assert 4 < TRIM_MIN * thin.height and 12 >= TRIM_MIN * thick.height
    assert content_box(thin) is None
    assert content_box(thick) == pytest.approx((0, 12, 400, 312), abs=0.3)


def test_nothing_is_trimmed_when_less_than_trim_keep_would_remain():
    pic = photo_like(4, PICTURE)
    for remains, found in ((TRIM_KEEP - 0.05, False), (TRIM_KEEP + 0.05, True)):
        bar = round((PICTURE[1] / remains - PICTURE[1]) / 2)
        assert (content_box(framed(pic, top=bar, bottom=bar)) is not None) == found
    flat = np.full((200, 200, 3), 128, np.uint8)
    flat[95:105, 95:105] = 20  # a flat grey picture with a dot: all of it looks like border
    assert content_box(Image.fromarray(flat)) is None


def test_pictures_with_transparency_or_too_small_are_left_alone():
    canvas = letterbox(photo_like(5, PICTURE))
    assert content_box(canvas) is not None and content_box(canvas.convert("L")) is not None
    assert content_box(canvas.convert("RGBA")) is None
    assert content_box(canvas.convert("LA")) is None
    tiny = np.random.default_rng(0).integers(0, 256, (5, 5, 3)).astype(np.uint8)
    tiny[0] = 0  # a one-line bar, 20% of the side: a border were the picture larger
    assert content_box(Image.fromarray(tiny)) is None


# ------------------------------------------------------------------ decode: the trimmed tensor

# The trimmed tensor's first and last rows take in some of the bar (the bicubic resize reads past
# the box): MSE to the picture's own tensor measured 4.6 (JPEG) and 4.8 (PNG), nearly all in those
# two rows, the rows inside are equal. The framed file's whole tensor is ~4000 from it.
CLOSE = 10.0


@pytest.mark.parametrize("fmt,save", [("jpg", {"quality": 92}), ("png", {})])
def test_the_trimmed_tensor_is_the_picture_inside_the_bars(tmp_path, fmt, save):
    pic = photo_like(1, PICTURE)
    pic.save(tmp_path / f"plain.{fmt}", **save)
    letterbox(pic).save(tmp_path / f"framed.{fmt}", **save)
    plain, boxed = decode_path(str(tmp_path / f"plain.{fmt}"), 50), decode_path(str(tmp_path / f"framed.{fmt}"), 50)
    assert plain.trimmed is None and plain.inner is None
    assert boxed.trimmed is not None and len(boxed.trimmed) == 50 * 50 * 3 and boxed.inner == PICTURE
    assert mse(as_array(boxed.trimmed), as_array(plain.tensor)) < CLOSE
    assert mse(as_array(boxed.tensor), as_array(plain.tensor)) > 100 * CLOSE  # the bars make the whole differ
    assert (boxed.width, boxed.height) == letterbox(pic).size  # the file's size, not the inside's


def test_the_inside_of_a_drafted_jpeg_is_measured_in_the_files_pixels(tmp_path):
    pic = photo_like(8, (1600, 1200))  # decoded at an eighth (DCT scaling): the box is found at 220 x 188
    framed(pic, top=150, bottom=150, left=80, right=80, fill=WHITE).save(tmp_path / "big.jpg", quality=92)
    decoded = decode_path(str(tmp_path / "big.jpg"), 50)
    assert (decoded.width, decoded.height) == (1760, 1500)
    assert decoded.inner is not None
    assert abs(decoded.inner[0] - 1600) <= 8 and abs(decoded.inner[1] - 1200) <= 8  # a pixel of the decode


@pytest.mark.parametrize("orientation,stored", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)])
def test_the_trimmed_tensor_is_upright_for_an_exif_rotated_file(tmp_path, orientation, stored):
    upright = letterbox(photo_like(1, PICTURE))
    upright.save(tmp_path / "upright.jpg", quality=92)
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(stored).save(tmp_path / "turned.jpg", quality=92, exif=exif)  # shown upright
    a, b = decode_path(str(tmp_path / "upright.jpg"), 50), decode_path(str(tmp_path / "turned.jpg"), 50)
    assert b.trimmed is not None and (b.width, b.height) == (a.width, a.height) and b.inner == a.inner == PICTURE
    assert mse(as_array(b.trimmed), as_array(a.trimmed)) < CLOSE  # measured 0.3 and 0.5
    assert mse(np.rot90(as_array(b.trimmed)), as_array(a.trimmed)) > 100 * CLOSE  # not merely similar either way


def test_a_raw_file_gets_a_trimmed_tensor_too(tmp_path):
    pytest.importorskip("rawpy")
    pytest.importorskip("pidng")
    from test_raw import make_dng

    pic = photo("kingfisher")
    plain = decode_path(str(make_dng(np.asarray(pic), tmp_path / "plain.dng")), 50)
    boxed = decode_path(str(make_dng(np.asarray(letterbox(pic)), tmp_path / "framed.dng")), 50)
    assert plain.trimmed is None and boxed.trimmed is not None
    t = signals.tones(np.stack([as_array(plain.tensor), as_array(boxed.trimmed), as_array(boxed.tensor)]))
    inside, whole = signals.scores(t, np.array([0, 0]), np.array([1, 2]), 0)
    assert inside <= TRIMMED_THRESHOLD < whole


# ------------------------------------------------------------------ searches on real photos

def make_framed_photos(root: Path) -> Path:
    """Each photo, a letterboxed copy (black bars), a pillarboxed copy (white bars) and a panned shot
    (15% off one side: another shot of the scene, a hard negative)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        im = photo(name)
        im.save(root / f"{name}.jpg", quality=92)
        letterbox(im).save(root / f"{name}__letterbox.jpg", quality=92)
        pillarbox(im).save(root / f"{name}__pillarbox.png")
        im.crop((0, 0, int(im.width * 0.85), im.height)).save(root / f"{name}__pan.jpg", quality=92)
    return root


@pytest.fixture
def framed_photos(tmp_path) -> Path:
    return make_framed_photos(tmp_path / "photos")


def found(index: Index) -> dict[frozenset, tuple[str, float]]:
    return {frozenset((Path(a).name, Path(b).name)): (s, sc)
            for a, b, s, sc in index.db.execute("SELECT path_a, path_b, signal, score FROM match_pairs")}


def stem(name: str) -> str:
    return name.split("__")[0].split(".")[0]


def test_framed_copies_are_found_by_trimmed_and_nothing_else_is(tmp_path, framed_photos):
    with Index(tmp_path / "i.db") as index:
        index.scan([framed_photos], processes=1)
        index.search(similarity="similar", same_dim=False, signals="pixels", full=True, processes=1)
        by_pixels = found(index)
        index.search(similarity="similar", same_dim=False, signals="pixels,tone", full=True, processes=1)
        without = found(index)
        report = index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        pairs = found(index)
    for name in PHOTOS:
        framed_pairs = [frozenset((f"{name}.jpg", f"{name}__letterbox.jpg")),
                        frozenset((f"{name}.jpg", f"{name}__pillarbox.png")),
                        frozenset((f"{name}__letterbox.jpg", f"{name}__pillarbox.png"))]  # (trimmed, trimmed)
        for pair in framed_pairs:
            assert pair not in by_pixels and pair not in without  # what pixels and tone miss
            assert pairs[pair][0] == "trimmed" and pairs[pair][1] <= TRIMMED_THRESHOLD, (pair, pairs.get(pair))
    assert not any(f"{stem(a)}__pan.jpg" in (a, b) for a, b in map(tuple, pairs))  # another shot
    assert all(stem(a) == stem(b) for a, b in map(tuple, pairs))  # never two different photos
    assert report.signals["trimmed"] == TRIMMED_THRESHOLD and report.unchecked == 0
    assert report.by_signal["trimmed"] == sum(s == "trimmed" for s, _ in pairs.values()) == 12


def three_cats(whole: Path, letterboxed: Path, pillarboxed: Path) -> None:
    """The cat photo, a letterboxed copy (JPEG) and a pillarboxed one (PNG), in the folders given."""
    for folder in {whole, letterboxed, pillarboxed}:
        folder.mkdir(exist_ok=True)
    im = photo("cat")
    im.save(whole / "cat.jpg", quality=92)
    letterbox(im).save(letterboxed / "cat__letterbox.jpg", quality=92)
    pillarbox(im).save(pillarboxed / "cat__pillarbox.png")


def test_in_folder_keeps_trimmed_pairs_within_each_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    three_cats(a, a, b)
    with Index(tmp_path / "i.db") as index:
        index.scan([a, b], processes=1)
        index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        across = found(index)
        index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1,
                     in_folder=True, roots=[a, b])
        within = found(index)
    assert frozenset(("cat.jpg", "cat__pillarbox.png")) in across  # the pass would pair them
    assert set(within) == {frozenset(("cat.jpg", "cat__letterbox.jpg"))}
    assert within[frozenset(("cat.jpg", "cat__letterbox.jpg"))][0] == "trimmed"


def test_same_dim_pairs_a_framed_copy_whose_inside_has_the_others_size(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    im = photo("castle")
    im.save(root / "castle.jpg", quality=92)
    letterbox(im).save(root / "castle__letterbox.jpg", quality=92)
    pillarbox(im).save(root / "castle__pillarbox.png")
    letterbox(im).transpose(Image.Transpose.ROTATE_90).save(root / "castle__turned.jpg", quality=92)  # 427 x 640
    small = im.resize((512, 342), Image.Resampling.LANCZOS)  # a smaller picture, then framed
    letterbox(small).save(root / "castle__small_letterbox.jpg", quality=92)
    with Index(tmp_path / "i.db") as index:
        index.scan([root], processes=1)
        index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        any_size = found(index)
        index.search(similarity="similar", same_dim=True, signals="default", full=True, processes=1)
        same_size = found(index)
    smaller = {p for p in any_size if "castle__small_letterbox.jpg" in p}
    assert any_size[frozenset(("castle.jpg", "castle__small_letterbox.jpg"))][0] == "trimmed"
    assert set(same_size) == set(any_size) - smaller and len(same_size) == 6  # either way up
    assert {s for p, (s, _) in same_size.items() if "castle.jpg" in p} == {"trimmed"}


# ------------------------------------------------------------------ exact against brute force

def brute_trimmed(index: Index, threshold: float, orientations) -> dict[tuple[int, int], tuple[float, float, int, int]]:
    """Every pair (lower id first) with at least one framed picture whose best tone score over
    (trimmed, whole), (whole, trimmed), (trimmed, trimmed) and the orientations (ties: the earlier)
    is within the threshold: (score, MSE of the whole tensors in that orientation, orientation, how
    many (combination, orientation) were within the threshold)."""
    ids = [r[0] for r in index.db.execute("SELECT id FROM images ORDER BY id")]
    whole = dict(zip(ids, load_tensors(index.db, ids, 50)))
    cut = {i: as_array(t) for i, t in index.db.execute(
        "SELECT image_id, tensor FROM trimmed_tensors WHERE tensor IS NOT NULL")}
    out = {}
    for x, a in enumerate(ids):
        for b in ids[x + 1:]:
            combos = ([(cut[a], whole[b])] if a in cut else []) + ([(whole[a], cut[b])] if b in cut else []) + (
                [(cut[a], cut[b])] if a in cut and b in cut else [])
            if not combos:
                continue
            one, other = np.array([0]), np.array([1])
            t = [signals.tones(np.stack(c)) for c in combos]
            scored = [(float(signals.scores(ti, one, other, o)[0]), o) for ti in t for o in orientations]
            score, o = min(scored)
            if score <= threshold:
                out[a, b] = (score, mse(whole[a], kernel.orient(whole[b][None], o)[0]), o,
                             sum(s <= threshold for s, _ in scored))
    return out


@pytest.mark.parametrize("mirror", [False, True])
def test_the_trimmed_pass_finds_exactly_the_brute_force_pairs(tmp_path, framed_photos, monkeypatch, mirror):
    from imgindex.compare import space

    monkeypatch.setattr(space, "MAX_PAIRS", 7)  # the neighbouring cells' pairs taken a few at a time
    monkeypatch.setattr(tone, "EXACT_BATCH", 5)  # and scored a few at a time
    castle, cat = photo("castle"), photo("cat")
    letterbox(castle).transpose(Image.Transpose.ROTATE_90).save(framed_photos / "castle__letterbox_turned.jpg",
                                                                quality=92)
    pillarbox(cat).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(framed_photos / "cat__pillarbox_mirrored.png")
    # a picture that matches in several orientations, none exactly (JPEG's blocks are not symmetric): the best wins
    symmetric(photo_like(7, (200, 150))).save(framed_photos / "sym.jpg", quality=92)
    letterbox(symmetric(photo_like(7, (200, 150)))).save(framed_photos / "sym__letterbox.jpg", quality=92)
    with Index(tmp_path / "i.db") as index:
        index.scan([framed_photos], processes=1)
        report = index.search(similarity="similar", same_dim=False, rotate=True, mirror=mirror, signals=("trimmed",),
                              full=True, processes=1)
        rows = index.db.execute("SELECT image_a, image_b, score, mse, rotation, mirrored, signal FROM match_pairs")
        got = {(a, b): (s, m, kernel.ORIENTATIONS.index(kernel.Orientation(r, bool(f))), sig)
               for a, b, s, m, r, f, sig in rows}
        want = brute_trimmed(index, TRIMMED_THRESHOLD, kernel.orientation_indices(True, mirror))
        names = {i: Path(p).name for i, p in index.db.execute("SELECT id, path FROM images")}
    assert list(report.signals) == ["trimmed", "motion"]  # the preset's motion check set nothing aside here
    assert report.moved == 0
    assert {k: v[3] for k, v in got.items()} == dict.fromkeys(want, "trimmed")
    for pair, (score, pixel_mse, o, _) in want.items():
        assert got[pair][0] == score and got[pair][2] == o, (pair, got[pair], want[pair])  # the same floats
        assert got[pair][1] == pytest.approx(pixel_mse, rel=1e-12)
    by_name = {frozenset((names[a], names[b])): v for (a, b), v in want.items()}
    turned = by_name[frozenset(("castle.jpg", "castle__letterbox_turned.jpg"))]
    assert kernel.ORIENTATIONS[turned[2]].rotation in (90, 270) and not kernel.ORIENTATIONS[turned[2]].mirrored
    assert (frozenset(("cat.jpg", "cat__pillarbox_mirrored.png")) in by_name) == mirror
    sym = frozenset(("sym.jpg", "sym__letterbox.jpg"))
    assert by_name[sym][3] >= 2  # several (combination, orientation) within the threshold: the best is kept
    assert len(want) >= 15


# ------------------------------------------------------------------ incremental, reference folders

def test_an_incremental_search_adds_a_framed_copy_and_a_picture_framed_before(tmp_path, framed_photos):
    late = tmp_path / "late"
    late.mkdir()
    (framed_photos / "kingfisher.jpg").rename(late / "kingfisher.jpg")  # its framed copies come first
    with Index(tmp_path / "i.db") as index:
        index.scan([framed_photos], processes=1)
        first = index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        framed(photo("castle"), 40, 40, 50, 50, fill=WHITE).save(late / "castle__mat.png")  # a mat all round
        index.scan([framed_photos, late], processes=1)
        again = index.search(similarity="similar", same_dim=False, signals="default", processes=1)
        assert again.incremental and again.base_search_id == first.search_id
        incremental = found(index)
        for pair in (("castle.jpg", "castle__mat.png"), ("kingfisher.jpg", "kingfisher__letterbox.jpg"),
                     ("kingfisher.jpg", "kingfisher__pillarbox.png")):  # a new framed one; a new whole one
            assert incremental[frozenset(pair)][0] == "trimmed", pair
        assert again.by_signal["trimmed"] >= 3
        index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        assert found(index) == incremental  # the same as comparing everything again


def test_two_framed_copies_in_a_reference_folder_are_never_paired(tmp_path):
    photos, ref = tmp_path / "photos", tmp_path / "ref"
    three_cats(photos, ref, ref)
    between = frozenset(("cat__letterbox.jpg", "cat__pillarbox.png"))
    with Index(tmp_path / "i.db") as index:
        index.scan([photos, ref], processes=1)
        index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        assert found(index)[between][0] == "trimmed"  # unless they are references, they pair
        report = index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1,
                              reference=[ref])
        pairs = found(index)
        stored = {frozenset(Path(p).name for p in pair) for pair in index.db.execute(
            "SELECT a.path, b.path FROM pairs p JOIN images a ON a.id = p.image_a JOIN images b ON b.id = p.image_b"
            " WHERE p.search_id = ?", [report.search_id])}
    assert between not in stored  # not even recorded (match_pairs would hide it)
    for copy in ("cat__letterbox.jpg", "cat__pillarbox.png"):
        assert pairs[frozenset(("cat.jpg", copy))][0] == "trimmed"


def test_a_pair_pixels_or_tone_matched_first_keeps_that_signal(tmp_path):
    """Two framed copies match each other inside the bars (trimmed, trimmed), but a format swap is
    a pixels pair and a darker copy a tone pair (its bars stay black): recorded once, by the first."""
    from PIL import ImageEnhance

    root, late = tmp_path / "photos", tmp_path / "late"
    root.mkdir(), late.mkdir()
    im = photo("castle")
    im.save(root / "castle.jpg", quality=92)
    boxed = letterbox(im)
    boxed.save(root / "boxed.jpg", quality=92)
    with Index(tmp_path / "i.db") as index:
        index.scan([root], processes=1)
        index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        boxed.save(late / "boxed.png")
        ImageEnhance.Brightness(boxed).enhance(0.85).save(late / "boxed_dark.jpg", quality=92)
        index.scan([root, late], processes=1)
        report = index.search(similarity="similar", same_dim=False, signals="default", processes=1)
        assert report.incremental
        incremental = found(index)
        rows = index.db.execute("SELECT count(*), count(DISTINCT image_a || ',' || image_b) FROM pairs"
                                " WHERE search_id = ?", [report.search_id]).fetchone()
        index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        full = found(index)
    assert incremental[frozenset(("boxed.jpg", "boxed.png"))][0] == "pixels"
    assert incremental[frozenset(("boxed.jpg", "boxed_dark.jpg"))][0] == "tone"
    assert incremental[frozenset(("boxed.png", "boxed_dark.jpg"))][0] == "tone"
    assert {s for p, (s, _) in incremental.items() if "castle.jpg" in p} == {"trimmed"} and len(incremental) == 6
    assert rows[0] == rows[1] == 6  # each pair once
    assert full == incremental


# ------------------------------------------------------------------ the rows kept, old indexes

def trimmed_rows(index: Index) -> dict[str, bytes | None]:
    return {Path(p).name: t for p, t in index.db.execute(
        "SELECT i.path, t.tensor FROM trimmed_tensors t JOIN images i ON i.id = t.image_id")}


def test_a_byte_copy_gets_the_sources_trimmed_row(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    im = photo("coral")
    letterbox(im).save(root / "framed.jpg", quality=92)
    im.save(root / "plain.jpg", quality=92)
    with Index(tmp_path / "i.db") as index:
        index.scan([root], processes=1)
        shutil.copy(root / "framed.jpg", root / "framed copy.jpg")
        shutil.copy(root / "plain.jpg", root / "plain copy.jpg")
        index.scan([root], processes=1)
        rows = trimmed_rows(index)
        inner = {Path(p).name: (w, h) for p, w, h in index.db.execute(
            "SELECT i.path, t.inner_width, t.inner_height FROM trimmed_tensors t JOIN images i ON i.id = t.image_id")}
        recipes = {r for (r,) in index.db.execute("SELECT DISTINCT recipe FROM trimmed_tensors")}
        n_rows = index.db.execute("SELECT count(*) FROM trimmed_tensors").fetchone()[0]
    assert rows["framed.jpg"] is not None and rows["framed copy.jpg"] == rows["framed.jpg"]
    assert rows["framed.jpg"] == decode_path(str(root / "framed.jpg"), 50).trimmed
    assert inner["framed.jpg"] == inner["framed copy.jpg"] == im.size  # what same_dim compares
    assert "plain.jpg" in rows and rows["plain.jpg"] is None and rows["plain copy.jpg"] is None
    assert n_rows == 4 and len(recipes) == 1


def test_an_index_from_before_borders_were_looked_for_never_guesses(tmp_path, framed_photos):
    with Index(tmp_path / "i.db") as index:
        index.scan([framed_photos], processes=1)
        before = index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        assert before.by_signal["trimmed"] > 0 and before.unchecked == 0
        index.db.execute("DELETE FROM trimmed_tensors")
        index.db.conn.commit()
        n = index.db.execute("SELECT count(*) FROM images").fetchone()[0]
        report = index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        signals_found = {s for s, _ in found(index).values()}
    assert report.unchecked == n == 16
    assert report.by_signal.get("trimmed", 0) == 0 and "trimmed" not in signals_found


# ------------------------------------------------------------------ hostile pictures

def test_hostile_pictures_are_indexed_or_recorded_and_searches_finish(tmp_path):
    root = tmp_path / "hostile"
    root.mkdir()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(root / "one_pixel.png")
    Image.new("RGB", (200, 150), BLACK).save(root / "black.jpg", quality=92)
    Image.new("RGB", (200, 150), WHITE).save(root / "white.png")
    halves = np.zeros((150, 200, 3), np.uint8)
    halves[75:] = 255
    Image.fromarray(halves).save(root / "halves.png")
    photo_like(6, (3000, 20)).save(root / "strip.jpg", quality=92)
    letterbox(Image.new("RGB", (200, 150), (128, 128, 128))).save(root / "framed_flat.png")  # nothing inside
    im = photo("castle")
    im.save(root / "castle.jpg", quality=92)
    letterbox(im).save(root / "castle__letterbox.jpg", quality=92)
    names = sorted(p.name for p in root.iterdir())
    with Index(tmp_path / "i.db") as index:
        index.scan([root], processes=1)
        indexed = {Path(p).name for (p,) in index.db.execute("SELECT path FROM images")}
        errors = {Path(e.path).name for e in index.scan_errors([root])}
        rows = trimmed_rows(index)
        index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        pairs = found(index)
    assert sorted(indexed | errors) == names and not indexed & errors
    assert set(rows) == indexed  # one row each, framed or not
    for name in ("one_pixel.png", "black.jpg", "white.png", "halves.png"):
        assert name not in rows or rows[name] is None, name
    assert rows.get("framed_flat.png") is not None  # framed, though too flat inside to have a tone
    assert pairs[frozenset(("castle.jpg", "castle__letterbox.jpg"))][0] == "trimmed"
