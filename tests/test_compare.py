"""The comparer over a real SQLite index: exact against brute force, incremental equals full."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgindex import Index, ImgIndexError
from imgindex.compare import execute, run as compare
from imgindex.scan.decode import DECODER

from helpers import best_match, write_image

PX = 8


def insert(index: Index, tensors: np.ndarray, dims=None, folders=None) -> list[int]:
    """Rows straight into the index (the comparer only reads stored tensors)."""
    px = tensors.shape[1]
    index.db.execute("INSERT OR REPLACE INTO settings VALUES ('px_size', ?)", [str(px)])
    ids = []
    now = datetime.now(timezone.utc).isoformat()
    with index.db.atomic():
        for k, t in enumerate(tensors):
            w, h = dims[k] if dims is not None else (640, 480)
            folder = folders[k] if folders is not None else "/photos"
            n = index.db.execute("SELECT count(*) FROM images").fetchone()[0]
            image_id = index.db.execute(
                "INSERT INTO images (path, folder, size, mtime_ns, width, height, format, content_hash, px_size,"
                " decoder, indexed_at) VALUES (?, ?, ?, 0, ?, ?, 'PNG', ?, ?, ?, ?)",
                [f"{folder}/img{n:05d}.png", folder, 1000 + k, w, h, f"h{n}", px, DECODER, now],
            ).lastrowid
            index.db.execute("INSERT INTO tensors VALUES (?, ?, ?)", [image_id, px, t.tobytes()])
            ids.append(image_id)
    return ids


def brute_force(tensors_by_id: dict[int, np.ndarray], threshold, rotate=True, mirror=False):
    """Every pair, float64 MSE, all orientations: {(a, b): (mse, rotation, mirrored)}."""
    out = {}
    ids = sorted(tensors_by_id)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            best = best_match(tensors_by_id[a], tensors_by_id[b], rotate, mirror)
            if best[0] <= threshold:
                out[(a, b)] = best
    return out


def stored_pairs(index: Index, search_id: int):
    return {
        (a, b): (mse, rot, bool(mir))
        for a, b, mse, rot, mir in index.db.execute(
            "SELECT image_a, image_b, mse, rotation, mirrored FROM pairs WHERE search_id = ?", [search_id]
        )
    }


def adversarial_set(rng, count, px=PX):
    base = rng.integers(0, 256, (max(2, count // 3), px, px, 3), dtype=np.uint8)
    out = []
    for k in range(count):
        t = base[k % len(base)].copy()
        kind = k % 6
        if kind == 1:
            t = np.rot90(t, k=1 + k % 3).copy()
        elif kind == 2:
            t = t.astype(np.int16)
            t.flat[k % t.size] += 3
            t = np.clip(t, 0, 255).astype(np.uint8)
        elif kind == 3:
            t = rng.permutation(t.reshape(-1)).reshape(t.shape)  # same sum, different picture
        elif kind == 4:
            t = np.fliplr(t).copy()
        out.append(t)
    return np.stack(out)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), count=st.integers(2, 40), threshold=st.sampled_from([0.0, 0.05, 1.0, 300.0]),
       rotate=st.booleans(), mirror=st.booleans(), algorithm=st.sampled_from(["classic", "chunked"]),
       chunksize=st.integers(1, 9))
def test_search_equals_brute_force_on_stored_tensors(tmp_path_factory, seed, count, threshold, rotate, mirror,
                                                     algorithm, chunksize):
    rng = np.random.default_rng(seed)
    tensors = adversarial_set(rng, count)
    with Index(tmp_path_factory.mktemp("s") / "i.db") as index:
        ids = insert(index, tensors)
        report = compare.search(index.db, str(index.path), similarity=threshold, rotate=rotate, mirror=mirror,
                                processes=1, chunksize=chunksize, algorithm=algorithm)
        expected = brute_force(dict(zip(ids, tensors)), threshold, rotate, mirror)
        assert stored_pairs(index, report.search_id) == expected
        assert report.pairs == len(expected)


@pytest.mark.slow
def test_classic_and_chunked_and_workers_agree(tmp_path, monkeypatch):
    monkeypatch.setattr(execute, "INLINE_WORK", 20_000_000)  # the searches with 2 processes go to workers
    rng = np.random.default_rng(7)
    tensors = adversarial_set(rng, 2400, px=10)
    with Index(tmp_path / "i.db") as index:
        insert(index, tensors)
        # random tensors have means within a few units of 127.5: with MSE 300 (reach 17) no chunk
        # pair is skipped by brightness, so the chunked search is big enough to go to workers
        options = dict(similarity=300.0, mirror=True, full=True)
        runs = [
            index.search(processes=1, **options),
            compare.search(index.db, str(index.path), processes=2, chunksize=256, algorithm="chunked", **options),
            compare.search(index.db, str(index.path), processes=2, algorithm="classic", **options),
        ]
        results = [stored_pairs(index, r.search_id) for r in runs]
        assert len(results[0]) > 100
        assert results[0] == results[1] == results[2]
        assert [(r.algorithm, r.workers) for r in runs] == [("classic", 0), ("chunked", 2), ("classic", 2)]


def test_chunked_search_only_meets_images_within_reach(tmp_path):
    rng = np.random.default_rng(5)
    levels = np.repeat(np.arange(0, 256, 16), 15)  # 240 images at 16 brightness levels
    tensors = np.clip(levels[:, None, None, None] + rng.integers(-2, 3, (len(levels), PX, PX, 3)), 0, 255)
    tensors = tensors.astype(np.uint8)
    with Index(tmp_path / "i.db") as index:
        ids = insert(index, tensors)
        progress = []
        report = compare.search(index.db, str(index.path), similarity=4.0, processes=1, chunksize=30,
                                algorithm="chunked", progress=progress.append)
        assert progress[-1].total <= 2 * 8  # 16 brightness levels, each meets at most the next: not all pairs
        assert stored_pairs(index, report.search_id) == brute_force(dict(zip(ids, tensors)), 4.0)


def test_same_dim_and_in_folder_limit_who_is_compared(tmp_path):
    rng = np.random.default_rng(3)
    t = rng.integers(0, 256, (1, PX, PX, 3), dtype=np.uint8)
    tensors = np.repeat(t, 4, axis=0)
    dims = [(640, 480), (480, 640), (800, 600), (640, 480)]
    folders = ["/r1/a", "/r1/b", "/r1/a", "/r2"]
    with Index(tmp_path / "i.db") as index:
        ids = insert(index, tensors, dims, folders)
        r = index.search(processes=1)
        assert set(stored_pairs(index, r.search_id)) == {(ids[0], ids[1]), (ids[0], ids[3]), (ids[1], ids[3])}
        r = index.search(processes=1, same_dim=False)
        assert len(stored_pairs(index, r.search_id)) == 6
        r = index.search(processes=1, same_dim=False, in_folder=True, roots=["/r1", "/r2"])
        assert set(stored_pairs(index, r.search_id)) == {(ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[2])}
        nested = index.result()
        assert set(nested) == {"/r1"} and len(next(iter(nested["/r1"].values()))) == 2
        with pytest.raises(ImgIndexError, match="scan some folders first"):
            index.search(in_folder=True)  # no roots given, and no scan to take them from


def test_groups_are_connected_components_with_the_best_keeper(tmp_path):
    # a ~ b (MSE 1/192 * 9), b ~ c, but a and c are further apart than the threshold
    a = np.zeros((PX, PX, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 3
    c = b.copy()
    c[1, 1, 1] = 3
    far = np.full((PX, PX, 3), 200, np.uint8)
    n = PX * PX * 3
    with Index(tmp_path / "i.db") as index:
        ids = insert(index, np.stack([a, b, c, far, far]), dims=[(10, 10), (30, 20), (20, 30), (5, 5), (5, 5)])
        index.search(similarity=9 / n, processes=1, same_dim=False)
        groups = index.db.execute("SELECT group_id, image_id, is_keeper, mse_to_keeper FROM match_groups").fetchall()
        by_group = {}
        for gid, image_id, keeper, mse in groups:
            by_group.setdefault(gid, []).append((image_id, keeper, mse))
        members = sorted(sorted(m[0] for m in g) for g in by_group.values())
        assert members == [[ids[0], ids[1], ids[2]], [ids[3], ids[4]]]
        keepers = {m[0] for g in by_group.values() for m in g if m[1]}
        # most pixels wins (b and c tie on pixels: larger file wins, c has size 1002); equal twins: larger size
        assert keepers == {ids[2], ids[4]}
        mse_a = next(m[2] for g in by_group.values() for m in g if m[0] == ids[0])
        assert mse_a == pytest.approx(18 / n)  # exact MSE to the keeper even without a direct pair
        assert sorted(index.lower_quality()) == sorted(
            index.db.execute("SELECT path FROM images WHERE id IN (?, ?, ?)", [ids[0], ids[1], ids[3]]).fetchall()[i][0]
            for i in range(3)
        )


def test_bad_similarity_is_refused(tmp_path):
    with Index(tmp_path / "i.db") as index:
        for bad in ("nearly", -1, float("nan"), True):
            with pytest.raises(ImgIndexError, match="similarity must be"):
                index.search(similarity=bad)


def test_incremental_search_equals_full_after_adds_moves_and_removals(tmp_path):
    root = tmp_path / "photos"
    for i in range(12):
        write_image(root / "a" / f"p{i}.png", seed=i % 5, size=(40, 30))  # 5 pictures, copies of each
    for i in range(2):
        write_image(root / "c" / f"untouched{i}.png", seed=50, size=(40, 30))  # a group nothing changes
    with Index(tmp_path / "i.db") as index:
        index.scan([root], processes=1)
        first = index.search(similarity=1.0, processes=1)
        assert not first.incremental and first.pairs > 0
        for i in range(12, 16):
            write_image(root / "b" / f"p{i}.png", seed=i % 5, size=(40, 30))
        (root / "a" / "p0.png").unlink()
        os.rename(root / "a" / "p1.png", root / "b" / "moved.png")
        shutil.copy(root / "a" / "p2.png", root / "b" / "copy.png")
        index.scan([root], processes=1)
        inc = index.search(similarity=1.0, processes=1)
        assert inc.incremental and inc.base_search_id == first.search_id
        assert 0 < inc.new_images < inc.images
        full = index.search(similarity=1.0, processes=1, full=True)
        assert not full.incremental
        assert stored_pairs(index, inc.search_id) == stored_pairs(index, full.search_id)
        members = "SELECT group_id, image_id, is_keeper, mse_to_keeper, rotation FROM group_members WHERE search_id = ?"
        assert set(index.db.execute(members, [inc.search_id])) == set(index.db.execute(members, [full.search_id]))
        again = index.search(similarity=1.0, processes=1)  # nothing new: nothing compared
        assert again.incremental and again.new_images == 0 and again.new_pairs == 0
        assert stored_pairs(index, again.search_id) == stored_pairs(index, full.search_id)
        members = "SELECT group_id, image_id, is_keeper, mse_to_keeper, rotation FROM group_members WHERE search_id = ?"
        assert set(index.db.execute(members, [again.search_id])) == set(index.db.execute(members, [full.search_id]))
        assert again.groups == full.groups > 0
        other = index.search(similarity=2.0, processes=1)  # other settings: a full search
        assert not other.incremental
