"""The tone signal (compare.signals, compare.tone): exact against a brute-force reference, the bound
it prunes with, and what a search with it finds on real photos and their edits."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance, ImageOps

from helpers import invoke, photo_like
from imgindex import Index
from imgindex.compare import kernel, motion, signals, tone
from imgindex.compare.settings import RANK_THRESHOLD, TONE_THRESHOLD, TRIMMED_THRESHOLD
from imgindex.errors import ImgIndexError
from imgindex.db.queries import load_tensors

DATA = Path(__file__).parent / "data"
PHOTOS = ("castle.jpg", "cat.jpg", "coral.jpg", "kingfisher.jpg")


# ------------------------------------------------------------------ the reference, in Python integers

def reference_ranks(lum: np.ndarray) -> np.ndarray:
    """Doubled mean ranks, from their definition: 2 (values below) + (values equal) + 1."""
    flat = [int(x) for x in lum.ravel()]
    return np.array([2 * sum(y < x for y in flat) + sum(y == x for y in flat) + 1 for x in flat],
                    dtype=object).reshape(lum.shape)


def _spread(values: np.ndarray, n: int) -> tuple[int, int]:
    s = int(sum(map(int, values.ravel())))
    return s, n * sum(int(x) * int(x) for x in values.ravel()) - s * s


def reference_score(a: np.ndarray, b: np.ndarray, orientation: int, rank: bool = False) -> float:
    """The tone score (``rank``: of the luminance's ranks) of (a, b) in one orientation from the
    definition, sums in Python integers."""
    px = a.shape[0]
    n = px * px
    la, lb = (np.vectorize(int)((299 * t[..., 0].astype(object) + 587 * t[..., 1].astype(object)
                                 + 114 * t[..., 2].astype(object) + 500) // 1000) for t in (a, b))
    lb = kernel.orient(lb[None, ..., None], orientation)[0, ..., 0]
    if min(_spread(la, n)[1], _spread(lb, n)[1]) < n * n * signals.MIN_STD**2:
        return math.inf
    if rank:
        la, lb = reference_ranks(la), reference_ranks(lb)
    (sa, va), (sb, vb) = _spread(la, n), _spread(lb, n)
    edges = kernel.grid_edges(px, signals.LOCAL_GRID)
    ra, rb = float(n * va), float(n * vb)
    worst = -math.inf
    for i in range(len(edges) - 1):
        for j in range(len(edges) - 1):
            cells = [(y, x) for y in range(edges[i], edges[i + 1]) for x in range(edges[j], edges[j + 1])]
            A = [n * int(la[y, x]) - sa for y, x in cells]
            B = [n * int(lb[y, x]) - sb for y, x in cells]
            pa, pb = float(sum(v * v for v in A)), float(sum(v * v for v in B))
            q = float(sum(u * v for u, v in zip(A, B)))
            d = pa / ra + pb / rb - 2.0 * q / math.sqrt(ra * rb)
            worst = max(worst, d * (n / (2.0 * len(cells))))
    return worst


def reference_matches(tensors: np.ndarray, threshold: float, orientations,
                      rank: bool = False) -> dict[tuple[int, int], tuple[float, int]]:
    """Every pair (i < j) within the threshold: its smallest score and, on ties, the earlier orientation."""
    found = {}
    for i in range(len(tensors)):
        for j in range(i + 1, len(tensors)):
            best = min((reference_score(tensors[i], tensors[j], o, rank), o) for o in orientations)
            if best[0] <= threshold:
                found[i, j] = best
    return found


@st.composite
def tensor_sets(draw):
    """A few small tensors: random ones, edits of one another (brightness, contrast, grey), flat ones."""
    px = draw(st.sampled_from([4, 7, 10, 12]))
    k = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (px, px, 3))
    out = []
    for _ in range(k):
        kind = draw(st.sampled_from(["random", "edit", "turned", "flat", "noisy"]))
        if kind == "random":
            t = rng.integers(0, 256, (px, px, 3))
        elif kind == "edit":
            t = np.clip(base * rng.uniform(0.5, 1.5) + rng.uniform(-40, 40), 0, 255)
        elif kind == "turned":
            t = np.rot90(base, rng.integers(0, 4))
        elif kind == "flat":
            t = np.full((px, px, 3), rng.integers(0, 256)) + rng.integers(0, 2, (px, px, 3))
        else:
            t = np.clip(base + rng.normal(0, 6, base.shape), 0, 255)
        out.append(np.asarray(t).astype(np.uint8))
    return np.stack(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensor_sets(), st.sampled_from([0.0, 0.02, 0.1, 0.5, 2.0]), st.booleans(), st.booleans())
def test_tone_and_rank_scores_equal_the_integer_reference_bit_for_bit(tensors, threshold, mirror, rank):
    orientations = kernel.orientation_indices(True, mirror)
    t = signals.tones(tensors, rank=rank)
    ia, ib = np.triu_indices(len(tensors), 1)
    for o in orientations:
        got = signals.scores(t, ia, ib, o)
        want = [reference_score(tensors[i], tensors[j], o, rank) for i, j in zip(ia, ib)]
        assert got.tolist() == want  # the same floats: exact, not close
        quick = signals.scores(t, ia, ib, o, limit=threshold)  # a quarter of the blocks first
        assert [q if w <= threshold else None for q, w in zip(quick.tolist(), want)] == [
            w if w <= threshold else None for w in want]
        assert all(q > threshold for q, w in zip(quick.tolist(), want) if w > threshold)
    o_all = np.repeat(np.array(orientations), len(ia))
    sc = np.concatenate([signals.scores(t, ia, ib, o) for o in orientations])
    m = signals.best(np.tile(ia, len(orientations)), np.tile(ib, len(orientations)), o_all, sc, threshold)
    got = {(int(a), int(b)): (float(s), int(o)) for a, b, s, o in zip(m.rows, m.cols, m.score, m.orient)}
    assert got == reference_matches(tensors, threshold, orientations, rank)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensor_sets(), st.booleans())
def test_the_bound_never_exceeds_twice_the_score(tensors, rank):
    """What pruning relies on: |coarse(a) - T coarse(b)|^2 <= 2 (1 - r) <= 2 score, in every orientation,
    and each block within its box (merged blocks within theirs)."""
    px = tensors.shape[1]
    t = signals.tones(tensors, rank=rank)
    c = signals.coarse(t, px)
    ia, ib = np.triu_indices(len(tensors), 1)
    for o in kernel.orientation_indices(True, True):
        s = signals.scores(t, ia, ib, o)
        d = ((c[ia] - kernel.orient(c[ib], o)) ** 2).sum(axis=(1, 2, 3))
        has = np.isfinite(s)
        assert np.all(d[has] <= 2 * s[has].clip(min=0) * (1 + 1e-9) + 2e-12)
        for k in np.flatnonzero(has):  # the box: block by block, what a pair at its own score can differ by
            block = np.abs(c[ia[k]] - kernel.orient(c[ib[k]][None], o)[0])[..., 0]
            assert np.all(block <= signals.box(max(float(s[k]), 0.0), px))
            merged, box = signals.merged(c, max(float(s[k]), 0.0), px)
            assert np.all(np.abs(merged[ia[k]] - kernel.orient(merged[ib[k]][None], o)[0])[..., 0] <= box)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensor_sets(), st.sampled_from([0.02, 0.1, 0.5, 2.0]), st.booleans())
def test_the_box_search_finds_exactly_the_pairs_within_the_box_of_each_other(tensors, threshold, rank):
    """Neighbouring cells, then the box one axis at a time: every pair whose points are within the
    box on every axis, and no other (tiny tensors, with fewer axes than the cascade, too)."""
    from imgindex.compare import tone

    px = tensors.shape[1]
    points = tone.Points.of(signals.coarse(signals.tones(tensors, rank=rank), px), threshold, px)
    everyone = np.arange(len(tensors))
    a, b = points.pairs(everyone, everyone, same=True)
    far = np.abs(points.close[:, None, :] - points.close[None, :, :]).max(axis=2)
    want = {(i, j) for i in everyone for j in everyone if i < j and far[i, j] <= tone.BOX_REACH}
    got = [tuple(sorted(p)) for p in zip(a.tolist(), b.tolist())]
    assert len(got) == len(set(got)) and set(got) == want


def test_the_score_means_one_minus_the_correlation_block_by_block():
    """The definition in floats: z-scored luminance, each block's mean squared difference / 2."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (20, 20, 3)).astype(np.uint8)
    b = np.clip(a * 0.7 + 30 + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    la, lb = (signals.luminance(x[None])[0].astype(np.float64) for x in (a, b))
    za, zb = ((x - x.mean()) / x.std() for x in (la, lb))
    per_block = ((za - zb) ** 2).reshape(10, 2, 10, 2).mean(axis=(1, 3)) / 2
    got = signals.scores(signals.tones(np.stack([a, b])), np.array([0]), np.array([1]), 0)[0]
    assert got == pytest.approx(per_block.max(), rel=1e-9)
    assert got >= 1 - np.corrcoef(la.ravel(), lb.ravel())[0, 1] - 1e-12  # the pruning premise


def test_flat_images_have_no_tone_and_never_match_by_it():
    flat = np.stack([np.full((10, 10, 3), v, np.uint8) for v in (10, 200)])
    nearly = flat.copy()
    nearly[:, 0, 0] += 1  # a spread far below MIN_STD
    t = signals.tones(np.concatenate([flat, nearly]))
    assert not t.has_tone.any()
    assert np.isinf(signals.scores(t, np.array([0, 2]), np.array([1, 3]), 0)).all()


def test_tone_refuses_tensors_too_large_to_stay_exact():
    with pytest.raises(signals.ToneUnavailable, match="at most"):
        signals.tones(np.zeros((1, signals.MAX_PX + 1, signals.MAX_PX + 1, 3), np.uint8))


# ------------------------------------------------------------------ searches on real photos

def edits(im: Image.Image) -> dict[str, Image.Image]:
    """What people do to photos that pixel MSE misses (as ../shared/corpora/make_edits.py does)."""
    return {"contrast": ImageEnhance.Contrast(im).enhance(1.1), "dark": ImageEnhance.Brightness(im).enhance(0.85),
            "gray": ImageOps.grayscale(im).convert("RGB"), "saturated": ImageEnhance.Color(im).enhance(1.5)}


def pan(im: Image.Image, share: float) -> tuple[Image.Image, Image.Image]:
    """Two overlapping views of one scene, as a camera that moved: different shots."""
    w, h = im.size
    return im.crop((0, 0, int(w * (1 - share)), h)), im.crop((int(w * share), 0, w, h))


@pytest.fixture
def edited(tmp_path) -> Path:
    root = tmp_path / "edited"
    root.mkdir()
    for name in PHOTOS:
        im = ImageOps.exif_transpose(Image.open(DATA / name)).convert("RGB")
        stem = name.split(".")[0]
        im.save(root / f"{stem}.jpg", quality=92)
        for kind, x in edits(im).items():
            x.save(root / f"{stem}__{kind}.jpg", quality=92)
        a, b = pan(im, 0.15)
        a.save(root / f"{stem}__pan_a.jpg", quality=92)
        b.save(root / f"{stem}__pan_b.jpg", quality=92)
    return root


def found(index: Index) -> dict[frozenset, tuple[str, float]]:
    return {frozenset((Path(a).name, Path(b).name)): (s, sc)
            for a, b, s, sc in index.db.execute("SELECT path_a, path_b, signal, score FROM match_pairs")}


def test_similar_finds_edited_copies_by_tone_and_keeps_other_shots_apart(tmp_path, edited):
    with Index(tmp_path / "i.db") as index:
        index.scan([edited], processes=1)
        index.search(similarity="similar", same_dim=False, signals="pixels", full=True)
        by_pixels = found(index)
        report = index.search(similarity="similar", same_dim=False, signals="default", full=True)
        both = found(index)
    for name in PHOTOS:
        stem = name.split(".")[0]
        for kind in ("contrast", "dark", "gray"):
            pair = frozenset((f"{stem}.jpg", f"{stem}__{kind}.jpg"))
            assert pair not in by_pixels  # what MSE alone misses
            assert both[pair][0] == "tone" and both[pair][1] <= TONE_THRESHOLD
        assert frozenset((f"{stem}__pan_a.jpg", f"{stem}__pan_b.jpg")) not in both  # another shot
    assert all(a.split("__")[0].split(".")[0] == b.split("__")[0].split(".")[0] for a, b in map(tuple, both))
    assert report.signals == {"pixels": 6.0, "tone": TONE_THRESHOLD, "rank": RANK_THRESHOLD,
                              "trimmed": TRIMMED_THRESHOLD, "motion": float(motion.VERSION)}
    assert report.by_signal["tone"] == sum(s == "tone" for s, _ in both.values()) > 0
    assert {p: v for p, v in both.items() if v[0] == "pixels"} == by_pixels  # pixels first, unchanged


def brute_tone(index: Index, threshold: float, orientations, same_dim: bool,
               rank: bool = False) -> dict[tuple[int, int], tuple[float, int]]:
    ids = np.array([r[0] for r in index.db.execute("SELECT id FROM images ORDER BY id")])
    dims = {i: tuple(sorted((w, h))) for i, w, h in index.db.execute("SELECT id, width, height FROM images")}
    tensors = load_tensors(index.db, ids, 50)
    t = signals.tones(tensors, rank=rank)
    out = {}
    for x in range(len(ids)):
        for y in range(x + 1, len(ids)):
            if same_dim and dims[ids[x]] != dims[ids[y]]:
                continue
            s = [(signals.scores(t, np.array([x]), np.array([y]), o)[0], o) for o in orientations]
            best = min(s)
            if best[0] <= threshold:
                out[int(ids[x]), int(ids[y])] = (float(best[0]), best[1])
    return out


@pytest.mark.parametrize("same_dim, signal", [(False, "tone"), (True, "tone"), (False, "rank"), (True, "rank")])
def test_the_tone_and_rank_passes_find_exactly_the_brute_force_pairs(tmp_path, edited, monkeypatch, same_dim, signal):
    from imgindex.compare import space

    monkeypatch.setattr(space, "MAX_PAIRS", 7)  # the neighbouring cells' pairs taken a few at a time
    monkeypatch.setattr(tone, "EXACT_BATCH", 5)
    with Index(tmp_path / "i.db") as index:
        index.scan([edited], processes=1)
        index.search(similarity="similar", same_dim=same_dim, rotate=True, signals=signal, full=True)
        got = {(a, b): (s, kernel.ORIENTATIONS.index(kernel.Orientation(r, bool(m))))
               for a, b, s, r, m in index.db.execute(
                   "SELECT image_a, image_b, score, rotation, mirrored FROM match_pairs")}
        threshold = RANK_THRESHOLD if signal == "rank" else TONE_THRESHOLD
        want = brute_tone(index, threshold, kernel.orientation_indices(True, False), same_dim, signal == "rank")
    assert got == want and len(want) >= 12


def test_an_incremental_search_adds_an_edited_copy_by_tone(tmp_path, edited):
    late = tmp_path / "late"
    late.mkdir()
    with Index(tmp_path / "i.db") as index:
        index.scan([edited], processes=1)
        first = index.search(similarity="similar", same_dim=False, signals="default", full=True)
        im = Image.open(edited / "cat.jpg")
        ImageEnhance.Brightness(im).enhance(0.8).save(late / "cat_darker.jpg", quality=90)
        index.scan([edited, late], processes=1)
        again = index.search(similarity="similar", same_dim=False)
        assert again.incremental and again.base_search_id == first.search_id
        pairs = found(index)
        assert pairs[frozenset(("cat.jpg", "cat_darker.jpg"))][0] == "tone"
        incremental = dict(pairs)
        index.search(similarity="similar", same_dim=False, full=True)
        assert found(index) == incremental  # the same as comparing everything again


def test_searches_record_their_signals_and_never_build_on_other_signals(tmp_path, edited):
    with Index(tmp_path / "i.db") as index:
        index.scan([edited], processes=1)
        a = index.search(similarity="similar", same_dim=False, signals="pixels")
        b = index.search(similarity="similar", same_dim=False, signals="pixels,tone")
        c = index.search(similarity="similar", same_dim=False, signals=("tone", "pixels"))
        rows = dict(index.db.execute("SELECT id, signals FROM searches").fetchall())
    assert json.loads(rows[a.search_id]) == {"pixels": 6.0, "motion": float(motion.VERSION)}  # the preset's check
    assert json.loads(rows[b.search_id]) == {"pixels": 6.0, "tone": TONE_THRESHOLD, "motion": float(motion.VERSION)}
    assert not b.incremental  # other signals: a search of its own
    assert c.incremental and c.base_search_id == b.search_id  # the same signals, in any order


def test_a_number_or_duplicates_means_pixels_only_as_in_difpy(tmp_path, edited):
    with Index(tmp_path / "i.db") as index:
        index.scan([edited], processes=1)
        for similarity in (0, "duplicates", 200):
            report = index.search(similarity=similarity, same_dim=False, signals="default", full=True)
            assert list(report.signals) == ["pixels"]
            assert {s for s, _ in found(index).values()} <= {"pixels"}


def test_the_cli_takes_signals_and_says_what_made_pairs(tmp_path, edited):
    db = tmp_path / "i.db"
    done = invoke("find", edited, "--db", db, "--similarity", "similar", "--no-same-dim", "--signals", "tone,pixels",
                  "--format", "json")
    assert done.returncode == 0, done.stderr
    assert f"MSE <= 6 or tone <= {TONE_THRESHOLD:g}" in done.stderr
    status = invoke("status", "--db", db)
    assert f"or tone <= {TONE_THRESHOLD:g}" in status.stdout
    bad = invoke("search", "--db", db, "--signals", "pixels,colour")
    assert bad.returncode != 0 and "signals must be one or more of pixels, tone" in bad.stderr


def test_the_tone_signal_needs_tensors_of_at_most_max_px(tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    photo_like(1, (300, 300)).save(root / "a.png")
    with Index(tmp_path / "i.db") as index:
        index.scan([root], px_size=signals.MAX_PX + 2, processes=1)
        with pytest.raises(Exception, match="--signals pixels"):
            index.search(similarity="similar", signals="tone")


def test_the_report_says_which_members_only_tone_matched(tmp_path, edited):
    from imgindex.report.data import load_groups

    Image.open(edited / "coral.jpg").save(edited / "coral__copy.png")  # a format swap: pixels match it
    with Index(tmp_path / "i.db") as index:
        index.scan([edited], processes=1)
        report = index.search(similarity="similar", same_dim=False, signals="default", full=True)
        members = {Path(m.path).name: m for g in load_groups(index.db, report.search_id) for m in g.members}
        pixel_pairs = [p for p, (s, _) in found(index).items() if s == "pixels"]
    assert members["cat__gray.jpg"].matched_by == "tone"  # joined by tone alone
    assert pixel_pairs and all(members[name].matched_by is None for pair in pixel_pairs for name in pair)


def test_refresh_signals_gives_an_old_index_its_trimmed_tensors_and_nothing_else(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    im = ImageOps.exif_transpose(Image.open(DATA / "castle.jpg")).convert("RGB")
    im.save(root / "castle.jpg", quality=92)
    framed = Image.new("RGB", (im.width, int(im.height * 1.3)))
    framed.paste(im, (0, int(im.height * 0.15)))
    framed.save(root / "castle-framed.jpg", quality=92)
    Image.open(DATA / "cat.jpg").save(root / "cat.jpg")
    db = tmp_path / "i.db"
    with Index(db) as index:
        index.scan([root], processes=1)
        index.db.execute("DELETE FROM trimmed_tensors")  # as an index made before borders were looked for
        before = index.db.execute("SELECT id, path, content_hash FROM images ORDER BY id").fetchall()
    done = invoke("search", "--db", db, "--similarity", "similar", "--no-same-dim", "--signals", "default")
    assert done.returncode == 0 and "3 images were indexed before borders" in done.stderr
    assert "--refresh-signals" in done.stderr
    refreshed = invoke("scan", root, "--db", db, "--refresh-signals")
    assert refreshed.returncode == 0, refreshed.stderr
    assert "Looked for borders in 3 images indexed before they were: 1 framed" in refreshed.stderr
    with Index(db) as index:
        assert index.db.execute("SELECT id, path, content_hash FROM images ORDER BY id").fetchall() == before
        assert index.refresh_signals().looked_at == 0  # nothing left to do: resumable, idempotent
        report = index.search(similarity="similar", same_dim=False, signals="default")
        assert report.unchecked == 0
        assert found(index)[frozenset(("castle.jpg", "castle-framed.jpg"))][0] == "trimmed"


def test_tone_and_rank_side_by_side_in_threads_find_what_one_thread_finds(tmp_path, edited, monkeypatch):
    import threading

    from imgindex.compare import passes

    with Index(tmp_path / "i.db") as index:
        index.scan([edited], processes=1)
        index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=1)
        alone = found(index)
        monkeypatch.setattr(passes, "SIDE_BY_SIDE", 0)  # a library this small counts as large enough
        ran_in, real = [], passes.pass_batch

        def watched(*args):
            ran_in.append(threading.current_thread().name)
            return real(*args)

        monkeypatch.setattr(passes, "pass_batch", watched)
        report = index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=2)
        assert found(index) == alone and report.by_signal["rank"] > 0 and report.by_signal["tone"] > 0
        assert sorted(ran_in) == ["imgindex-rank-pass", "imgindex-tone-pass"]  # each in a thread of its own


def test_a_pass_that_fails_in_its_thread_fails_the_search(tmp_path, edited, monkeypatch):
    from imgindex.compare import passes

    with Index(tmp_path / "i.db") as index:
        index.scan([edited], processes=1)
        monkeypatch.setattr(passes, "SIDE_BY_SIDE", 0)

        def broken(conn, signals, *args):
            raise sqlite3.OperationalError(f"disk I/O error ({signals[0]})")

        monkeypatch.setattr(passes, "pass_batch", broken)
        with pytest.raises(ImgIndexError, match=r"the (tone|rank) search failed: OperationalError: disk I/O error"):
            index.search(similarity="similar", same_dim=False, signals="default", full=True, processes=2)
        assert index.db.execute("SELECT status FROM searches ORDER BY id DESC LIMIT 1").fetchone() == ("failed",)


def test_the_preset_leaves_tone_and_rank_out_of_a_very_large_search_and_says_so(tmp_path, edited, monkeypatch):
    from imgindex.compare import run

    db = tmp_path / "i.db"
    with Index(db) as index:
        index.scan([edited], processes=1)
    monkeypatch.setattr(run, "SIGNALS_MOST", 10)  # the 28 images count as very many
    done = invoke("search", "--db", db, "--similarity", "similar", "--no-same-dim", "--full")
    assert done.returncode == 0 and "the tone and rank signals were left out" in done.stderr
    assert "--signals pixels,tone,rank,trimmed" in done.stderr
    with Index(db) as index:
        assert {s for s, _ in found(index).values()} <= {"pixels", "trimmed"}
        asked = index.search(similarity="similar", same_dim=False, signals="pixels,tone,rank,trimmed", full=True)
        assert asked.left_out == () and asked.by_signal["tone"] > 0  # by name, they run anyway
