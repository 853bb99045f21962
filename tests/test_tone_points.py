"""The tone and rank point index (``compare.tone_points``): a few new images looked up in it find
exactly the pairs a search of the whole index finds, at any threshold, whatever was keyed before
or after it was fitted; scans, copies and removals keep it whole."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance

from imgindex import Index
from imgindex.compare import kernel, tone, tone_points
from imgindex.compare.plan import load_scope
from imgindex.compare.settings import RANK_THRESHOLD, TONE_THRESHOLD
from imgindex.scan.decode import DECODER

DATA = Path(__file__).parent / "data"


def stored(path: Path, tensors: np.ndarray, sizes: list[tuple[int, int]], folders: list[str]) -> Index:
    """An index holding these tensors as images (rows written directly: nothing to decode)."""
    index = Index(path)
    px = tensors.shape[1]
    index.db.execute("INSERT OR REPLACE INTO settings VALUES ('px_size', ?)", [str(px)])
    with index.db.atomic():
        for i, (t, (w, h), folder) in enumerate(zip(tensors, sizes, folders)):
            image_id = index.db.execute(
                "INSERT INTO images (path, folder, size, mtime_ns, width, height, format, content_hash, px_size,"
                " decoder, indexed_at) VALUES (?, ?, ?, 0, ?, ?, 'PNG', ?, ?, ?, '2026-12-02')",
                [f"{folder}/{i}.png", folder, 1000 + i, w, h, f"{i:064x}", px, DECODER]).lastrowid
            index.db.execute("INSERT INTO tensors VALUES (?, ?, ?)", [image_id, px, t.tobytes()])
    return index


@st.composite
def indexes(draw):
    """Small tensors (random, edits and turns of a few bases, flat ones), two sizes, two roots, a
    reference folder; which images are new, which were keyed before the fit, and the thresholds."""
    px = draw(st.sampled_from([7, 10, 16]))
    k = draw(st.integers(3, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bases = rng.integers(0, 256, (3, px, px, 3))
    tensors = []
    for _ in range(k):
        kind = rng.integers(0, 4)
        base = bases[rng.integers(0, 3)]
        if kind == 0:
            t = rng.integers(0, 256, (px, px, 3))
        elif kind == 1:
            t = np.clip(base * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30) + rng.normal(0, 3, base.shape), 0, 255)
        elif kind == 2:
            t = np.rot90(base, rng.integers(0, 4))
        else:
            t = np.full((px, px, 3), rng.integers(0, 256))
        tensors.append(np.asarray(t).astype(np.uint8))
    sizes = [(640, 480) if rng.random() < 0.7 else (480, 640 + int(rng.integers(0, 2))) for _ in range(k)]
    folders = [str(rng.choice(["/r/a", "/r/ref", "/s"])) for _ in range(k)]
    new = rng.random(k) < draw(st.sampled_from([0.1, 0.3, 1.0]))
    keyed_first = rng.random(k) < 0.6
    fitted = draw(st.sampled_from([0.02, 0.1]))
    threshold = draw(st.sampled_from([0.01, 0.02, 0.1, 0.4]))
    return np.stack(tensors), sizes, folders, new, keyed_first, fitted, threshold


def as_set(found: tone.ToneFound) -> set:
    return set(zip(found.image_a.tolist(), found.image_b.tolist(), found.orient.tolist(), found.score.tolist(),
                   found.ssd.tolist()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(indexes(), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_new_images_looked_up_in_the_kept_index_find_what_a_search_of_all_finds(case, rank, same_dim, in_folder,
                                                                                 mirror):
    tensors, sizes, folders, new, keyed_first, fitted, threshold = case
    px = tensors.shape[1]
    orientations = kernel.orientation_indices(True, mirror)
    with tempfile.TemporaryDirectory() as tmp, stored(Path(tmp) / "i.db", tensors, sizes, folders) as index:
        scope = load_scope(index.db, ("/r", "/s"), in_folder)
        is_new, is_ref = new[: len(scope.ids)], scope.under_any(("/r/ref",))
        tone.ensure_keys(index.db, scope.ids[keyed_first], px, rank=rank)  # the rest keyed after the fit
        tone_points.ensure(index.db, rank, px, fitted)
        args = (index.db, scope, is_new, is_ref, px, threshold, orientations)
        options = dict(same_dim=same_dim, in_folder=in_folder, rank=rank)
        kept_before = tone.FEW_NEW, tone.FEW_SHARE
        try:
            tone.FEW_NEW, tone.FEW_SHARE = 10**9, 1  # every search through the kept index
            looked_up = tone.search(*args, **options)
            tone.FEW_NEW = 0  # a search of the buckets
            everything = tone.search(*args, **options)
        finally:
            tone.FEW_NEW, tone.FEW_SHARE = kept_before
        assert as_set(looked_up) == as_set(everything) and len(looked_up) == len(everything)
        has_tone = {i for (i,) in index.db.execute(f"SELECT image_id FROM {'rank' if rank else 'tone'}_keys"
                                                   " WHERE length(coarse) > 0")}
        space = tone_points.space_of(index.db, rank, px)
        if space is None:  # fewer than two images with a tone: nothing to fit, and nothing to find
            assert len(has_tone) < 2 and len(everything) == 0
            return
        kept = {i for (i,) in index.db.execute("SELECT image_id FROM signal_points WHERE recipe = ?", [space.recipe])}
        assert kept == has_tone  # those keyed after the fit too


def test_a_point_is_within_reach_of_every_image_within_the_threshold_and_the_reach_scales():
    at, fitted = tone_points.reach(0.02, 0.02, 50), tone_points.reach(0.08, 0.02, 50)
    assert tone_points.BOX_REACH < at < tone_points.SIDE  # one cell each way at the fitted threshold
    assert fitted == pytest.approx((at - 1e-4) * 2 + 1e-4, rel=1e-6)  # the box grows as the root of it


@pytest.fixture()
def shots(tmp_path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("kingfisher", "castle", "cat", "coral"):
        shutil.copy(DATA / f"{name}.jpg", root / f"{name}.jpg")
    return root


def kept_points(index: Index) -> dict[str, set[str]]:
    rows = index.db.execute("SELECT p.recipe, i.path FROM signal_points p JOIN images i ON i.id = p.image_id")
    out: dict[str, set[str]] = {}
    for recipe, path in rows:
        out.setdefault(recipe, set()).add(Path(path).name)
    return out


def test_an_incremental_search_finds_a_darker_copy_through_the_kept_index_and_scans_keep_it(tmp_path, shots,
                                                                                          monkeypatch):
    monkeypatch.setattr(tone, "FEW_SHARE", 2)  # a few new images: at most half of the index
    late = tmp_path / "late"
    late.mkdir()
    with Index(tmp_path / "i.db") as index:
        index.scan([shots], processes=1)
        index.search(similarity="similar", same_dim=False, full=True)
        assert kept_points(index) == {}  # fitted at the first search of a few new images, not before
        ImageEnhance.Brightness(Image.open(shots / "cat.jpg")).enhance(0.8).save(late / "cat_darker.jpg", quality=90)
        index.scan([shots, late], processes=1)
        again = index.search(similarity="similar", same_dim=False)
        assert again.incremental
        everyone = {p.name for p in shots.iterdir()} | {"cat_darker.jpg"}
        assert kept_points(index) == {"tone-2": everyone, "rank-1": everyone}
        pairs = {frozenset((Path(a).name, Path(b).name)): s for a, b, s in
                 index.db.execute("SELECT path_a, path_b, signal FROM match_pairs")}
        assert pairs[frozenset(("cat.jpg", "cat_darker.jpg"))] in ("tone", "rank")
        index.search(similarity="similar", same_dim=False, full=True)
        assert {frozenset((Path(a).name, Path(b).name)): s for a, b, s in
                index.db.execute("SELECT path_a, path_b, signal FROM match_pairs")} == pairs
        shutil.copy2(late / "cat_darker.jpg", late / "copy.jpg")  # a byte copy: its row's points copied
        ImageEnhance.Contrast(Image.open(shots / "coral.jpg")).enhance(1.2).save(late / "coral_more.jpg")
        (shots / "castle.jpg").unlink()  # removed: its points go with its row
        index.scan([shots, late], processes=1)
        expected = (everyone | {"copy.jpg", "coral_more.jpg"}) - {"castle.jpg"}
        assert kept_points(index) == {"tone-2": expected, "rank-1": expected}


def test_the_thresholds_the_index_is_fitted_at_are_the_signals_own(tmp_path, shots, monkeypatch):
    monkeypatch.setattr(tone, "FEW_SHARE", 2)  # a few new images: at most half of the index
    with Index(tmp_path / "i.db") as index:
        index.scan([shots], processes=1)
        index.search(similarity="similar", full=True)
        shutil.copy(DATA / "cat.jpg", shots / "cat2.jpg")
        ImageEnhance.Brightness(Image.open(DATA / "cat.jpg")).enhance(1.1).save(shots / "cat3.jpg")
        index.scan([shots], processes=1)
        index.search(similarity="similar")
        fitted = dict(index.db.execute("SELECT recipe, threshold FROM signal_space"))
    assert fitted == {"tone-2": TONE_THRESHOLD, "rank-1": RANK_THRESHOLD}


def test_an_incomplete_tone_point_index_is_found_and_made_again(tmp_path, shots, monkeypatch):
    from helpers import invoke

    monkeypatch.setattr(tone, "FEW_SHARE", 2)
    db = tmp_path / "i.db"
    with Index(db) as index:
        index.scan([shots], processes=1)
        index.search(similarity="similar", full=True)
        shutil.copy(DATA / "cat.jpg", shots / "cat2.png")
        index.scan([shots], processes=1)
        index.search(similarity="similar")
        assert index.db.execute("SELECT count(*) FROM signal_points").fetchone()[0] == 10  # 5 images, 2 signals
        index.db.execute("DELETE FROM signal_points WHERE image_id = (SELECT min(id) FROM images)")
        index.db.conn.commit()
    ran = invoke("check", "--db", db)
    assert ran.returncode == 1 and "PROBLEM tone point index" in ran.stdout, ran.stdout
    repaired = invoke("check", "--db", db, "--repair")
    assert repaired.returncode == 0 and "dropped the tone and rank point index" in repaired.stdout, repaired.stdout
    assert invoke("check", "--db", db).returncode == 0
    with Index(db) as index:
        assert index.db.execute("SELECT count(*) FROM signal_space").fetchone()[0] == 0
        ImageEnhance.Brightness(Image.open(DATA / "cat.jpg")).enhance(1.1).save(shots / "cat3.jpg")
        index.scan([shots], processes=1)
        index.search(similarity="similar")
        assert index.db.execute("SELECT count(*) FROM signal_points").fetchone()[0] == 12


def test_images_keyed_by_another_process_while_the_index_is_fitted_get_their_points(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    tensors = rng.integers(0, 256, (6, 16, 16, 3)).astype(np.uint8)
    with stored(tmp_path / "i.db", tensors, [(640, 480)] * 6, ["/r"] * 6) as index:
        ids = np.array([i for (i,) in index.db.execute("SELECT id FROM images ORDER BY id")])
        tone.ensure_keys(index.db, ids[:4], 16)
        fitting = tone_points.features

        def meanwhile(*args):  # while the fit runs, another process gives the last two images keys
            monkeypatch.setattr(tone_points, "features", fitting)
            with Index(tmp_path / "i.db") as other:
                tone.ensure_keys(other.db, ids[4:], 16)
                assert tone_points.space_of(other.db, False, 16) is None  # so it kept no points
            return fitting(*args)

        monkeypatch.setattr(tone_points, "features", meanwhile)
        tone_points.ensure(index.db, False, 16, TONE_THRESHOLD)
        kept = [i for (i,) in index.db.execute("SELECT image_id FROM signal_points ORDER BY image_id")]
    assert kept == ids.tolist()
