"""The motion check (compare.motion, compare.vetting): exact against a reference in Python integers, and
what a 'similar' search sets aside on real photos: a subject that moved, never a re-encode or an edit."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance, ImageOps

from helpers import invoke
from imgindex import Index
from imgindex.compare import motion, run

DATA = Path(__file__).parent / "data"
PHOTOS = ("castle.jpg", "cat.jpg", "coral.jpg", "kingfisher.jpg")


# ------------------------------------------------------------------ the reference, in Python integers

def reference_moved(a: np.ndarray, b: np.ndarray, scales=None) -> bool:
    """The module's definition, written again with loops and Fractions (b already oriented)."""
    px = a.shape[0]
    ssd = int(((a.astype(int) - b) ** 2).sum())
    for scale in scales or motion.SCALES:
        side, median, blocks = reference_blocks(a, b, scale.divisor)
        for s0, gain in blocks:
            if (Fraction(gain, side * side) >= scale.floor and Fraction(gain * px * px) >= scale.ratio * side * side * ssd
                    and s0 >= scale.local * median):
                return True
    return False


def reference_blocks(a: np.ndarray, b: np.ndarray, divisor: int) -> tuple[int, int, list[tuple[int, int]]]:
    """(B, the median block's S0, (S0, gain) of every block) at one scale, from the definition."""
    px = a.shape[0]
    A, B = a.astype(int).tolist(), b.astype(int).tolist()
    shift, side = max(1, round(px / 25)), max(2, round(px / divisor))
    inner = px - 2 * shift
    if inner < side:
        return side, 0, []
    starts = list(range(0, inner - side + 1, max(1, side // 2)))
    if starts[-1] != inner - side:
        starts.append(inner - side)

    def block(y0, x0, dy, dx):
        return sum((A[y][x][c] - B[y + dy][x + dx][c]) ** 2
                   for y in range(y0, y0 + side) for x in range(x0, x0 + side) for c in range(3))

    out = []
    for sy in starts:
        for sx in starts:
            y0, x0 = sy + shift, sx + shift
            s0 = block(y0, x0, 0, 0)
            out.append((s0, s0 - min(block(y0, x0, dy, dx) for dy in range(-shift, shift + 1)
                                     for dx in range(-shift, shift + 1) if dy or dx)))
    return side, sorted(s0 for s0, _ in out)[len(out) // 2], out


@st.composite
def tensor_pairs(draw):
    """A random tensor and one close to it: noise, a patch moved by a pixel or two, a constant, or itself."""
    px = draw(st.sampled_from([10, 13, 16, 20]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    smooth = draw(st.booleans())
    base = rng.integers(0, 256, (px, px, 3)) if not smooth else np.cumsum(rng.integers(-20, 21, (px, px, 3)), axis=1) % 256
    a = base.astype(np.uint8)
    kind = draw(st.sampled_from(["noise", "moved", "flat", "same", "both"]))
    b = a.astype(np.int64)
    if kind in ("noise", "both"):
        b = b + rng.integers(-draw(st.integers(0, 12)), draw(st.integers(0, 12)) + 1, b.shape)
    if kind in ("moved", "both"):
        s = draw(st.integers(3, px // 2))
        y, x = draw(st.integers(0, px - s)), draw(st.integers(0, px - s))
        dy, dx = draw(st.integers(-2, 2)), draw(st.integers(-2, 2))
        y2, x2 = min(max(y + dy, 0), px - s), min(max(x + dx, 0), px - s)
        b[y2:y2 + s, x2:x2 + s] = a[y:y + s, x:x + s]
    if kind == "flat":
        a = np.full_like(a, draw(st.integers(0, 255)))
        b = a.astype(np.int64) + rng.integers(-3, 4, a.shape)
    return a, np.clip(b, 0, 255).astype(np.uint8)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tensor_pairs(), min_size=1, max_size=4))
def test_moved_equals_the_integer_reference(pairs):
    by_px: dict[int, list] = {}
    for a, b in pairs:
        by_px.setdefault(a.shape[0], []).append((a, b))
    for group in by_px.values():
        a = np.stack([p[0] for p in group])
        b = np.stack([p[1] for p in group])
        ssd = ((a.astype(np.int64) - b) ** 2).sum(axis=(1, 2, 3))
        got = motion.moved(a, b, ssd)
        assert got.tolist() == [reference_moved(x, y) for x, y in group]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensor_pairs(), st.integers(0, 1), st.tuples(*[st.sampled_from([-1, 0, 1])] * 3))
def test_moved_is_exact_at_its_bars(pair, which, nudges):
    """Bars set exactly at one block's own values, or one step either side: the check agrees with the
    definition at the boundary of each bar (a rounding or a > for >= would show here)."""
    a, b = pair
    px, ssd = a.shape[0], int(((a.astype(int) - b) ** 2).sum())
    scale = motion.SCALES[which]
    side, median, blocks = reference_blocks(a, b, scale.divisor)
    if not blocks or ssd == 0:
        return
    s0, gain = max(blocks, key=lambda blk: blk[1])
    n = side * side
    step = Fraction(1, 10**6)
    floor = max(Fraction(0), Fraction(gain, n) + nudges[0] * step)
    ratio = max(Fraction(0), Fraction(gain * px * px, n * ssd) + nudges[1] * step)
    local = max(0, (s0 // median if median else 10**6) + nudges[2])
    bars = (dataclasses.replace(scale, floor=floor, ratio=ratio, local=local),)
    saved = motion.SCALES
    motion.SCALES = bars
    try:
        got = motion.moved(a[None], b[None], np.array([ssd]))[0]
    finally:
        motion.SCALES = saved
    assert got == reference_moved(a, b, bars)


def test_identical_tensors_and_small_differences_never_moved():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (6, 50, 50, 3)).astype(np.uint8)
    assert not motion.moved(a, a.copy(), np.zeros(6, np.int64)).any()
    b = np.clip(a.astype(int) + rng.integers(-1, 2, a.shape), 0, 255).astype(np.uint8)  # below every floor
    assert not motion.moved(a, b, ((a.astype(int) - b) ** 2).sum(axis=(1, 2, 3))).any()


def test_a_patch_moved_by_one_pixel_is_caught_where_noise_of_the_same_size_is_not():
    rng = np.random.default_rng(5)
    lines = np.cumsum(rng.integers(-30, 31, (50, 50, 3)), axis=1)
    a = (40 + (lines - lines.min()) * 175 // np.ptp(lines)).astype(np.uint8)  # texture, 40-215: noise unclipped
    b = a.copy()
    b[20:32, 21:33] = a[20:32, 20:32]  # a 12-px patch moved one pixel right
    ssd = int(((a.astype(int) - b) ** 2).sum())
    noisy = np.clip(a.astype(int) + rng.normal(0, np.sqrt(ssd / a.size), a.shape).round(), 0, 255).astype(np.uint8)
    noise_ssd = int(((a.astype(int) - noisy) ** 2).sum())
    assert noise_ssd >= ssd * 0.8  # as far apart in MSE
    got = motion.moved(np.stack([a, a]), np.stack([b, noisy]), np.array([ssd, noise_ssd]))
    assert got.tolist() == [True, False]


# ------------------------------------------------------------------ searches on real photos

def moved_subject(im: Image.Image, rng: random.Random, share: float = 0.2) -> Image.Image:
    """A region (``share`` of each side) shifted 2-3%, as a subject that moved between two shots
    (as make_edits.py scenes makes them, with smaller subjects: these photos are busy). Also the
    recipe of benchmarks/motion.py."""
    w, h = im.size
    bw, bh = int(w * share), int(h * share)
    x0, y0 = rng.randint(int(w * 0.1), int(w * 0.6)), rng.randint(int(h * 0.1), int(h * 0.6))
    dx = int(w * rng.choice((0.02, 0.03))) * rng.choice((-1, 1))
    dy = int(h * rng.choice((0.0, 0.02)))
    out = im.copy()
    out.paste(im.crop((x0, y0, x0 + bw, y0 + bh)), (x0 + dx, y0 + dy))
    return out


@pytest.fixture
def shots(tmp_path) -> Path:
    """Each photo, a re-encode, a half-size copy, a darker copy and nine shots in which a subject moved."""
    root = tmp_path / "shots"
    root.mkdir()
    for name in PHOTOS:
        im = ImageOps.exif_transpose(Image.open(DATA / name)).convert("RGB")
        stem = name.split(".")[0]
        im.save(root / f"{stem}.jpg", quality=92)
        im.save(root / f"{stem}__q60.jpg", quality=60)
        im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS).save(root / f"{stem}__half.png")
        ImageEnhance.Brightness(im).enhance(0.85).save(root / f"{stem}__dark.jpg", quality=92)
        for seed in range(8):
            moved_subject(im, random.Random(seed)).save(root / f"{stem}__moved{seed}.jpg", quality=92)
        moved_subject(im, random.Random(1)).rotate(90, expand=True).save(root / f"{stem}__movedturned.jpg", quality=92)
    return root


def pairs_of(index: Index) -> dict[frozenset, str]:
    return {frozenset((Path(a).name, Path(b).name)): s
            for a, b, s in index.db.execute("SELECT path_a, path_b, signal FROM match_pairs")}


def shot(name: str) -> str:
    """Which shot a file is of: 'still' (the photo and its copies), or 'movedN' (a turned copy of moved1)."""
    tag = name.split("__")[1].split(".")[0] if "__" in name else "still"
    return "moved1" if tag == "movedturned" else tag if tag.startswith("moved") else "still"


def two_shots(pair: frozenset) -> bool:
    """Whether the pair is two different shots of one scene (never one picture). A darker copy of the
    still shot is left out: tone joins it with a shot whose subject moved, as pixels stay far apart
    there and the check does not look (README: what still escapes)."""
    a, b = sorted(pair)
    if "__dark" in a or "__dark" in b:
        return False
    return shot(a) != shot(b)


def test_similar_sets_moved_subjects_aside_and_keeps_every_copy(tmp_path, shots):
    with Index(tmp_path / "i.db") as index:
        index.scan([shots], processes=1)
        by_mse = index.search(similarity=6, same_dim=False, full=True)  # a number: pixels, as difPy
        plain = pairs_of(index)
        report = index.search(similarity="similar", same_dim=False, full=True)
        similar = pairs_of(index)
    moved_by_mse = {p for p in plain if two_shots(p)}
    assert len(moved_by_mse) >= 4  # pixel MSE joins shots whose subject moved: the check has work to do
    assert any("__movedturned" in n for p in moved_by_mse for n in p)  # turned, too (rotate is on)
    assert by_mse.moved == 0 and "motion" not in by_mse.signals
    assert not any(two_shots(p) for p in similar)  # no two shots joined
    assert sum(p in similar for p in plain if not two_shots(p)) == sum(not two_shots(p) for p in plain)
    for name in PHOTOS:
        stem = name.split(".")[0]
        for copy in ("q60.jpg", "half.png", "dark.jpg"):
            assert frozenset((f"{stem}.jpg", f"{stem}__{copy}")) in similar
    assert report.moved >= len(moved_by_mse)
    assert report.signals["motion"] == motion.VERSION


@pytest.mark.parametrize("algorithm", ["classic", "chunked"])  # chunked: a few new images ask the kept grid
def test_an_incremental_search_sets_aside_what_a_full_one_does(tmp_path, shots, algorithm):
    late = tmp_path / "late"
    late.mkdir()
    for path in sorted(shots.glob("*__moved*")):
        if path.name.startswith(("cat", "coral")):
            path.rename(late / path.name)
    with Index(tmp_path / "i.db") as index:
        def search(**options):
            return run.search(index.db, str(index.path), similarity="similar", same_dim=False, algorithm=algorithm,
                              **options)

        index.scan([shots], processes=1)
        first = search(full=True)
        index.scan([shots, late], processes=1)
        again = search()
        assert again.incremental and again.base_search_id == first.search_id
        incremental = pairs_of(index)
        search(full=True)
        assert pairs_of(index) == incremental
    assert again.moved > 0 and not any(two_shots(p) for p in incremental)


def test_a_moved_subject_is_set_aside_whichever_signal_finds_it(tmp_path, shots):
    with Index(tmp_path / "i.db") as index:
        index.scan([shots], processes=1)
        index.search(similarity=6, same_dim=False, signals="tone", full=True)  # a number: no check
        by_tone = {p for p in pairs_of(index) if two_shots(p)}
        report = index.search(similarity="similar", same_dim=False, signals="tone", full=True)
        kept = pairs_of(index)
    assert by_tone  # tone joins such shots too
    assert not any(two_shots(p) for p in kept) and report.moved > 0


def test_the_check_is_in_the_profile_so_old_similar_searches_are_not_built_on(tmp_path, shots):
    with Index(tmp_path / "i.db") as index:
        index.scan([shots], processes=1)
        first = index.search(similarity="similar", same_dim=False, full=True)
        row = json.loads(index.db.execute("SELECT signals FROM searches WHERE id = ?", [first.search_id]).fetchone()[0])
        assert row["motion"] == motion.VERSION
        old = {k: v for k, v in row.items() if k != "motion"}  # as a search before the check recorded it
        index.db.execute("UPDATE searches SET signals = ? WHERE id = ?", [json.dumps(old), first.search_id])
        again = index.search(similarity="similar", same_dim=False)
    assert not again.incremental  # a search without the check is never built on: its pairs differ


def test_the_cli_says_how_many_pairs_it_set_aside_as_moved(tmp_path, shots):
    done = invoke("find", shots, "--db", tmp_path / "i.db", "--similarity", "similar", "--no-same-dim",
                  "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "unless moved" in done.stderr
    said = re.search(r"; ([0-9,]+) close pairs set aside as moved", done.stderr)
    assert said and int(said.group(1)) >= 4
    groups = [[keeper, *(m[0] for m in members)] for keeper, members in json.loads(done.stdout).items()]
    assert any(any("__q60" in n for n in g) for g in groups)  # copies grouped
