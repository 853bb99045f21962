"""The chunked search's range search (compare.space, compare.nearby) against brute force: orbit
features bound every orientation, neighbouring cells hold every pair within reach exactly once,
and searches with pairs exactly at the threshold (tight in mean, block and orbit space) lose none."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgindex import Index
from imgindex.compare import few, kernel, space
from imgindex.compare import run as compare

from test_compare import brute_force, insert, stored_pairs


@given(st.integers(0, 2**32 - 1), st.sampled_from([5, 8, 10, 50]))
@settings(max_examples=40, deadline=None)
def test_orbit_features_are_the_same_in_every_orientation_and_bound_the_coarse_distance(seed, px):
    rng = np.random.default_rng(seed)
    tensors = rng.integers(0, 256, (2, px, px, 3), dtype=np.uint8)
    edges = kernel.grid_edges(px)
    coarse = kernel.coarse(tensors, edges)
    f = space.orbit_features(coarse)
    for o in range(8):
        turned = kernel.coarse(kernel.orient(tensors, o), edges)
        np.testing.assert_allclose(space.orbit_features(turned), f, rtol=1e-12, atol=1e-9)
        ssd = kernel.exact_ssd(tensors[:1], tensors[1:], o)[0]
        assert np.sum((f[0] - f[1]) ** 2) <= ssd * (1 + 1e-12) + 1e-9


def _points(draw_seed: int, n: int, clustered: bool) -> np.ndarray:
    rng = np.random.default_rng(draw_seed)
    if clustered:  # many points on top of each other and on cell boundaries
        centres = rng.normal(0, 20, (4, 6))
        return centres[rng.integers(0, 4, n)] + rng.integers(-2, 3, (n, 6)) * 1.5
    return rng.normal(0, 10, (n, 6))


@given(st.integers(0, 2**32 - 1), st.integers(2, 120), st.integers(2, 80), st.floats(0.5, 12),
       st.booleans(), st.integers(1, 50))
@settings(max_examples=80, deadline=None)
def test_neighbouring_cells_hold_every_pair_within_reach_exactly_once(seed, n_left, n_right, radius, clustered,
                                                                      block):
    pts = _points(seed, n_left + n_right, clustered)
    sp = space.fit(pts, radius, dims=3)
    z = space.project(sp, pts)
    keys = space.cell_keys(sp, z)
    left, right = np.arange(n_left), np.arange(n_left, n_left + n_right)
    gl, gr = space.make_grid(keys[left], z[left, 3]), space.make_grid(keys[right], z[right, 3])
    dist = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
    for same, (ga, gb, a, b) in ((True, (gl, gl, left, left)), (False, (gl, gr, left, right))):
        deltas = space.neighbour_offsets(sp, half=same)
        found = []
        for lo in range(0, len(a), block):
            for i, j in space.pair_blocks(ga, lo, min(lo + block, len(a)), gb, deltas, same=same):
                found += list(zip(a[ga.order[i]].tolist(), b[gb.order[j]].tolist()))
        pairs = [frozenset(p) for p in found] if same else found
        assert len(pairs) == len(set(pairs)), "a pair came twice"
        assert all(len(p) == 2 for p in pairs) if same else True
        within = {(x, y) for x in a for y in b if dist[x, y] <= radius and (not same or x < y)}
        got = {tuple(sorted(p)) for p in pairs} if same else set(pairs)
        assert within <= got
        counts = space.neighbour_counts(ga.keys, gb, deltas)
        if not same:
            assert counts.sum() == len(found)  # the planner's work figure is the candidates' number


def _pair_blocks_cell_by_cell(left, lo, hi, right, deltas, same):
    """The reference: every neighbouring cell looked up on its own, pairs by left point then right."""
    i_all, j_all = [], []
    for i in range(lo, hi):
        for d in np.unique(deltas):
            at = np.flatnonzero(right.keys == left.keys[i] + d)
            i_all += [i] * len(at)
            j_all += at.tolist()
        if same:
            at = np.flatnonzero(left.keys == left.keys[i])
            later = at[at > i].tolist()
            i_all += [i] * len(later)
            j_all += later
    return i_all, j_all


@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 60), st.booleans(), st.integers(1, 30))
@settings(max_examples=80, deadline=None)
def test_runs_of_neighbouring_cells_find_what_cells_one_by_one_find_in_the_same_order(seed, n_left, n_right, same,
                                                                                       block):
    rng = np.random.default_rng(seed)
    keys_left = rng.integers(0, 40, n_left)
    keys_right = keys_left if same else rng.integers(0, 40, n_right)
    deltas = np.unique(rng.integers(-6, 7, rng.integers(0, 10)))  # runs of consecutive offsets, and gaps
    if same:
        deltas = deltas[deltas > 0]
    left, right = space.make_grid(keys_left), space.make_grid(keys_right)
    right = left if same else right
    for lo in range(0, n_left, block):
        hi = min(lo + block, n_left)
        got = [np.concatenate(x) if x else np.empty(0, np.int64)
               for x in zip(*space.pair_blocks(left, lo, hi, right, deltas, same=same))] or [[], []]
        want = _pair_blocks_cell_by_cell(left, lo, hi, right, deltas, same)
        assert list(got[0]) == want[0] and list(got[1]) == want[1]
    counts = space.neighbour_counts(left.keys, right, deltas)
    assert counts.tolist() == [sum(int((right.keys == k + d).sum()) for d in deltas) for k in left.keys]


def _tight_set(rng: np.random.Generator, n: int, px: int, threshold: int) -> np.ndarray:
    """Uniform pictures and copies shifted by exactly sqrt(threshold) in every value (MSE == threshold,
    and every bound, mean, blocks and orbits, equal to it), some one step further, turned noise."""
    step = int(np.sqrt(threshold))
    base = rng.integers(step + 1, 255 - 2 * step - 1, n // 3)
    tensors = []
    for v in base:
        tensors.append(np.full((px, px, 3), v))
        tensors.append(np.full((px, px, 3), v + step))  # exactly at the threshold
        tensors.append(np.full((px, px, 3), v + step + 1))  # just past it from the first
    tensors = np.array(tensors[:n], dtype=np.int64)
    noisy = rng.integers(0, 256, (max(1, n // 6), px, px, 3))
    return np.clip(np.concatenate([tensors, noisy, np.rot90(noisy, 1, axes=(1, 2))]), 0, 255).astype(np.uint8)


@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 4, 9, 16]), st.booleans(), st.integers(1, 40),
       st.booleans())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_chunked_range_search_equals_brute_force_with_pairs_exactly_at_the_threshold(tmp_path_factory, seed,
                                                                                      threshold, rotate, chunksize,
                                                                                      incremental):
    rng = np.random.default_rng(seed)
    tensors = _tight_set(rng, 30, 8, threshold)
    with Index(tmp_path_factory.mktemp("tight") / "i.db") as index:
        half = len(tensors) // 2 if incremental else len(tensors)
        ids = insert(index, tensors[:half])
        options = dict(similarity=float(threshold), rotate=rotate, processes=1, chunksize=chunksize,
                       algorithm="chunked")
        report = compare.search(index.db, str(index.path), **options)
        if incremental:  # the rest arrive later: new against old, through the same range search
            ids += insert(index, tensors[half:])
            report = compare.search(index.db, str(index.path), **options)
            assert report.incremental
        expected = brute_force(dict(zip(ids, tensors)), threshold, rotate)
        assert stored_pairs(index, report.search_id) == expected
        assert any(abs(mse - threshold) < 1e-12 for mse, _, _ in expected.values())  # the tight case was there


def test_reference_folders_in_a_range_search_meet_only_the_rest(tmp_path):
    rng = np.random.default_rng(11)
    tensors = _tight_set(rng, 60, 8, 4)
    archive, photos = tmp_path / "archive", tmp_path / "photos"
    archive.mkdir()
    photos.mkdir()
    folders = [str(archive if k % 2 else photos) for k in range(len(tensors))]
    with Index(tmp_path / "i.db") as index:
        index.scan(tmp_path, processes=1)  # the folders are scanned (and hold no files of their own)
        ids = insert(index, tensors, folders=folders)
        index.add_reference(str(archive))  # one folder as a string: not its characters
        report = compare.search(index.db, str(index.path), similarity=4.0, processes=1, chunksize=7,
                                algorithm="chunked")
        in_archive = {i for i, f in zip(ids, folders) if f == str(archive)}
        expected = {p: v for p, v in brute_force(dict(zip(ids, tensors)), 4.0).items()
                    if not (p[0] in in_archive and p[1] in in_archive)}
        assert stored_pairs(index, report.search_id) == expected
        assert expected


@given(st.lists(st.integers(0, 60), unique=True), st.lists(st.integers(0, 60), unique=True))
def test_missing_from_is_the_set_difference(ids, kept):
    got = space.missing_from(np.array(sorted(ids), dtype=np.int64), np.array(sorted(kept), dtype=np.int64))
    assert got.tolist() == sorted(set(ids) - set(kept))


@given(st.integers(0, 2**32 - 1), st.sampled_from([4, 9]), st.integers(1, 3))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_few_new_images_against_many_read_their_keys_from_sqlite_and_find_the_same(tmp_path_factory, seed,
                                                                                      threshold, k):
    rng = np.random.default_rng(seed)
    tensors = _tight_set(rng, 60, 8, threshold)
    with Index(tmp_path_factory.mktemp("few") / "i.db") as index:
        old = len(tensors) - k  # k new against the rest: below 1/16 of the bucket, no scratch copy of keys
        ids = insert(index, tensors[:old])
        options = dict(similarity=float(threshold), processes=1, chunksize=7, algorithm="chunked")
        compare.search(index.db, str(index.path), **options)
        ids += insert(index, tensors[old:])
        report = compare.search(index.db, str(index.path), **options)
        assert report.incremental and report.new_images == k and k * 16 < len(tensors)
        assert stored_pairs(index, report.search_id) == brute_force(dict(zip(ids, tensors)), threshold)


def test_the_scratch_folder_goes_when_the_search_ends_and_a_killed_searchs_goes_at_the_next(tmp_path):
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = Path(tempfile.gettempdir()) / f"imgindex-search-{int(gone.stdout)}-left-by-a-kill"
    stale.mkdir(exist_ok=True)
    (stale / "b0-points.npy").write_bytes(b"x" * 1000)
    before = set(Path(tempfile.gettempdir()).glob("imgindex-search-*")) - {stale}
    rng = np.random.default_rng(4)
    with Index(tmp_path / "i.db") as index:
        insert(index, _tight_set(rng, 30, 8, 4))
        report = compare.search(index.db, str(index.path), similarity=4.0, processes=1, algorithm="chunked")
        assert report.pairs > 0
    assert not stale.exists()
    assert set(Path(tempfile.gettempdir()).glob("imgindex-search-*")) <= before  # its own is gone too


@given(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 6, 30, 120]), st.booleans())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_point_index_finds_every_pair_of_new_images_past_its_fitted_grid_and_threshold(tmp_path_factory, seed,
                                                                                           threshold, rotate):
    """The point index is fitted on the first images (here a narrow set: its grid is small) and kept;
    later images far outside it, searched at thresholds other than the one its cells fit, lose no pair."""
    rng = np.random.default_rng(seed)
    px = 8
    narrow = np.clip(120 + rng.integers(-3, 4, (12, px, px, 3)), 0, 255).astype(np.uint8)
    later = _tight_set(rng, 30, px, max(1, int(threshold)))
    later = np.concatenate([later, 255 - later[:6], np.clip(later[:6].astype(int) + 2, 0, 255).astype(np.uint8)])
    with Index(tmp_path_factory.mktemp("points") / "i.db") as index:
        ids = insert(index, narrow)
        options = dict(similarity=float(threshold), rotate=rotate, processes=1, chunksize=5, algorithm="chunked")
        compare.search(index.db, str(index.path), **options)
        assert index.db.execute("SELECT count(*) FROM search_space").fetchone()[0] == 1
        for part in np.array_split(later, 3):
            ids += insert(index, part, folders=[f"/photos/{len(ids)}"] * len(part))
            report = compare.search(index.db, str(index.path), **options)
            assert report.incremental and report.new_images == len(part)
            assert stored_pairs(index, report.search_id) == brute_force(dict(zip(ids, np.concatenate(
                [narrow, later])[: len(ids)])), threshold, rotate)
        index.db.execute("DELETE FROM images WHERE id = ?", [ids[0]])  # a removed image's point goes with it
        kept = index.db.execute("SELECT count(*) FROM search_points").fetchone()[0]
        assert kept == index.db.execute("SELECT count(*) FROM images").fetchone()[0]


def test_new_images_matching_each_other_across_tasks_are_one_pair_each(tmp_path):
    """A few new images are searched in tasks of FEW_PER_TASK; two new images that match, in two
    tasks, are found once (by the lower one's task), so the search writes each pair once."""
    rng = np.random.default_rng(3)
    first = _tight_set(rng, 30, 8, 4)
    later = _tight_set(rng, 3 * few.FEW_PER_TASK, 8, 4)
    with Index(tmp_path / "i.db") as index:
        ids = insert(index, first)
        options = dict(similarity=4.0, processes=1, chunksize=50, algorithm="chunked")
        compare.search(index.db, str(index.path), **options)
        new = insert(index, later, folders=["/photos/later"] * len(later))
        report = compare.search(index.db, str(index.path), **options)
        assert report.incremental and report.new_images == len(later)
        found = stored_pairs(index, report.search_id)
        assert found == brute_force(dict(zip(ids + new, np.concatenate([first, later]))), 4.0)
        task_of = {i: k // few.FEW_PER_TASK for k, i in enumerate(new)}
        assert any(a in task_of and b in task_of and task_of[a] != task_of[b] for a, b in found)
