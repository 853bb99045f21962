"""Search the index for matching pairs: plan buckets and chunks, run the kernel in workers, write SQL.

- Only images that may match are compared: with ``same_dim`` they are bucketed by their pixel
  dimensions (either orientation), with ``in_folder`` by the root folder they are under.
- Exact duplicates (threshold 0) are bucketed further by an orientation-invariant key (channel
  sums and sums of squares), so only images that could be identical meet the kernel: O(N).
- Each bucket is cut into id-ordered chunks; every pair of chunks is one task for a worker,
  which reads the tensors it needs from SQLite itself (read-only) and keeps the last chunks it
  read. The *classic* plan (<= CLASSIC_MAX images) lets workers keep the whole set; the
  *chunked* plan keeps only a few chunks, so memory is bounded by ``chunksize``, not N.
- Incremental: a search with the same settings as the latest one compares only the images
  added since (ids above its ``max_image_id``) against all, and carries the earlier pairs
  whose images still exist. ``full=True`` recomputes everything.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from typing import TYPE_CHECKING

import numpy as np

from imgindex import discover, groups, kernel, store
from imgindex.decode import DECODER
from imgindex.errors import ImgIndexError
from imgindex.workers import WorkerPool

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)

CLASSIC_MAX = 5000
MIN_CHUNK = 1000
INLINE_WORK = 20_000_000  # pairs x orientations (~0.2 s here) below which starting workers (~0.3 s) does not pay
SIMILARITY_PRESETS = {"duplicates": 0.0, "similar": 6.0}  # calibrated: README, benchmarks/accuracy.py


@dataclass(frozen=True)
class SearchProgress:
    done: int  # units of work (tasks) done
    total: int
    pairs: int
    elapsed: float


@dataclass(frozen=True)
class SearchReport:
    search_id: int
    similarity: str
    threshold: float
    algorithm: str  # classic | chunked
    incremental: bool
    base_search_id: int | None
    images: int
    new_images: int
    pairs: int
    new_pairs: int
    groups: int
    duration: float
    workers: int = 0  # comparison processes started (0: compared in this process)


def resolve_similarity(similarity: str | float | int) -> tuple[str, float]:
    """'duplicates' -> 0, 'similar' -> the calibrated preset, a number >= 0 -> itself."""
    if isinstance(similarity, str) and similarity.strip().lower() in SIMILARITY_PRESETS:
        name = similarity.strip().lower()
        return name, SIMILARITY_PRESETS[name]
    try:
        value = float(similarity)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value < 0 or isinstance(similarity, bool):
        raise ImgIndexError(
            f"similarity must be 'duplicates', 'similar' or a number >= 0 (an MSE threshold); got {similarity!r}."
        )
    return f"{value:g}", value


@dataclass(frozen=True)
class _Scope:
    ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    roots: np.ndarray  # index into the roots tuple, -1 when not in_folder
    moved_at: list  # ISO time of the image's last move, or None


def search(
    db: Database,
    db_path: str,
    *,
    similarity: str | float = "duplicates",
    rotate: bool = True,
    mirror: bool = False,
    same_dim: bool = True,
    in_folder: bool = False,
    roots: tuple[str, ...] = (),
    processes: int | None = None,
    chunksize: int | None = None,
    full: bool = False,
    progress: Callable[[SearchProgress], None] | None = None,
    algorithm: str | None = None,
) -> SearchReport:
    """Find every pair of indexed images with MSE <= the threshold; record pairs and groups.

    ``algorithm`` forces 'classic' or 'chunked' (default: classic up to CLASSIC_MAX images).
    """
    from imgindex.indexer import resolve_processes

    started = time.monotonic()
    name, threshold = resolve_similarity(similarity)
    processes = resolve_processes(processes)
    if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
        raise ImgIndexError(f"chunksize must be a whole number >= 1 (got {chunksize!r}).")
    roots = tuple(os.path.abspath(r) for r in roots)
    if in_folder and not roots:
        roots = _latest_scan_roots(db)
    if in_folder and not roots:
        raise ImgIndexError("in_folder searches each scanned folder on its own: scan some folders first.")
    px_size = int(store.get_setting(db, "px_size") or 0)
    scope = _load_scope(db, roots, in_folder)
    settings = {
        "similarity": name,
        "threshold": threshold,
        "rotate": int(rotate),
        "mirror": int(mirror),
        "same_dim": int(same_dim),
        "in_folder": int(in_folder),
        "roots": json.dumps(list(roots)),
        "px_size": px_size,
        "decoder": DECODER,
    }
    base = None if full else _base_search(db, settings)
    is_new = _new_mask(scope, base)
    n = len(scope.ids)
    algorithm = algorithm or ("classic" if n <= CLASSIC_MAX else "chunked")
    if algorithm not in ("classic", "chunked"):
        raise ImgIndexError(f"algorithm must be 'classic' or 'chunked' (got {algorithm!r}).")
    chunksize = chunksize or _default_chunksize(n, algorithm, processes)
    search_id = _start_row(db, settings, algorithm, processes, chunksize, base)
    try:
        orientations = kernel.orientation_indices(rotate, mirror)
        tasks = list(_plan(db, scope, is_new, px_size, threshold, same_dim, in_folder, chunksize, algorithm))
        new_pairs, workers = _run(db, db_path, search_id, tasks, threshold, orientations, px_size, processes,
                                  algorithm, progress, started)
        carried = _carry(db, search_id, base.search_id, scope.ids[~is_new]) if base else 0
        if base and new_pairs == 0 and carried == base.pairs:  # the same pairs: the same groups
            n_groups = _copy_groups(db, search_id, base.search_id)
        else:
            n_groups = _write_groups(db, search_id, roots if in_folder else (), px_size, orientations,
                                     base_id=base.search_id if base else None, changed=set(scope.ids[is_new].tolist()))
    except BaseException as exc:
        _finish_row(db, search_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", started)
        raise
    report = SearchReport(
        search_id=search_id,
        similarity=name,
        threshold=threshold,
        algorithm=algorithm,
        incremental=base is not None,
        base_search_id=base.search_id if base else None,
        images=n,
        new_images=int(is_new.sum()),
        pairs=new_pairs + carried,
        new_pairs=new_pairs,
        groups=n_groups,
        duration=time.monotonic() - started,
        workers=workers,
    )
    _finish_row(db, search_id, "completed", started, report, int(scope.ids.max(initial=0)))
    return report


def _default_chunksize(n: int, algorithm: str, processes: int) -> int:
    """classic: a few chunks per process, all kept in memory; chunked: difPy's 1e6 / N, at least MIN_CHUNK."""
    if algorithm == "classic":
        return max(1, min(-(-n // (2 * processes)), 1250))
    return max(1_000_000 // max(n, 1), MIN_CHUNK)


def _new_mask(scope: _Scope, base: _Base | None) -> np.ndarray:
    """Images a search must compare: all, or (incremental) those added or moved since the base."""
    if base is None:
        return np.ones(len(scope.ids), dtype=bool)
    moved = np.array([m is not None and m >= base.started_at for m in scope.moved_at], dtype=bool)
    return (scope.ids > base.max_image_id) | moved


def _latest_scan_roots(db: Database) -> tuple[str, ...]:
    row = db.execute("SELECT roots FROM scans WHERE status = 'completed' ORDER BY id DESC LIMIT 1").fetchone()
    return tuple(json.loads(row[0])) if row else ()


def _load_scope(db: Database, roots: tuple[str, ...], in_folder: bool) -> _Scope:
    """Ids, dimensions and (for in_folder) root of every image to search, in id order."""
    rows = db.execute("SELECT id, width, height, folder, moved_at FROM images ORDER BY id").fetchall()
    if roots:
        keep = []
        root_of = []
        for row in rows:
            match = next((k for k, r in enumerate(roots) if discover.under(row[3], r)), -1)
            if match >= 0:
                keep.append(row)
                root_of.append(match if in_folder else -1)
        rows = keep
    else:
        root_of = [-1] * len(rows)
    return _Scope(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        widths=np.array([r[1] for r in rows], dtype=np.int64),
        heights=np.array([r[2] for r in rows], dtype=np.int64),
        roots=np.array(root_of, dtype=np.int64),
        moved_at=[r[4] for r in rows],
    )


@dataclass(frozen=True)
class _Base:
    search_id: int
    max_image_id: int
    started_at: str
    pairs: int


def _base_search(db: Database, settings: dict) -> _Base | None:
    """The latest completed search with the same settings, whose pairs can be carried over."""
    row = db.execute(
        "SELECT id, max_image_id, similarity, threshold, rotate, mirror, same_dim, in_folder, roots, px_size, decoder,"
        " started_at, pairs FROM searches WHERE status = 'completed' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    same = (
        row[3] == settings["threshold"]
        and (row[4], row[5], row[6], row[7]) == (settings["rotate"], settings["mirror"], settings["same_dim"], settings["in_folder"])
        and row[8] == settings["roots"]
        and (row[9], row[10]) == (settings["px_size"], settings["decoder"])
    )
    return _Base(row[0], row[1] or 0, row[11], row[12] or 0) if same else None


# -- planning ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """Compare tensors of ids_a with ids_b (``ids_b is None``: ids_a with itself, i < j)."""

    ids_a: tuple[int, ...]
    ids_b: tuple[int, ...] | None

    @property
    def work(self) -> int:
        na = len(self.ids_a)
        return na * na // 2 if self.ids_b is None else na * len(self.ids_b)


def _buckets(scope: _Scope, same_dim: bool, in_folder: bool) -> Iterator[np.ndarray]:
    """Groups of scope positions that may contain matches; pairs never cross groups."""
    keys = [scope.roots if in_folder else np.zeros(len(scope.ids), np.int64)]
    if same_dim:
        keys += [np.minimum(scope.widths, scope.heights), np.maximum(scope.widths, scope.heights)]
    key = np.stack(keys, axis=1)
    order = np.lexsort(key.T[::-1])
    splits = np.flatnonzero(np.any(np.diff(key[order], axis=0) != 0, axis=1)) + 1
    for part in np.split(order, splits):
        if len(part) >= 2:
            yield np.sort(part)


@dataclass(frozen=True)
class _Keys:
    """Per scope position: the tensor's mean and its orientation-invariant identity key."""

    means: np.ndarray
    ikeys: list[bytes]


def search_keys(db: Database, ids: np.ndarray, px_size: int, chunk: int = 2048) -> _Keys:
    """Mean and identity key of every id, computed once per image and kept in ``search_keys``
    with its coarse vector, which workers read instead of the tensor to bound every pair."""
    have = {
        image_id: (mean, ikey)
        for image_id, mean, ikey in db.execute(
            "SELECT image_id, mean, ikey FROM search_keys WHERE image_id IN (SELECT value FROM json_each(?))",
            [json.dumps(ids.tolist())],
        )
    }
    missing = np.array([i for i in ids.tolist() if i not in have], dtype=np.int64)
    edges = kernel.grid_edges(px_size)
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        images = store.load_tensors(db, part, px_size)
        coarse = kernel.coarse(images, edges)
        tensors = images.reshape(len(part), -1, 3)
        sums = tensors.sum(axis=1, dtype=np.int64)
        squares = np.einsum("kvc,kvc->kc", tensors.astype(np.int32), tensors.astype(np.int32), dtype=np.int64)
        rows = [
            (image_id, float(s.sum()) / tensors[0].size, s.tobytes() + q.tobytes(), c.tobytes())
            for image_id, s, q, c in zip(part.tolist(), sums, squares, coarse)
        ]
        with db.atomic():
            db.conn.executemany("INSERT OR REPLACE INTO search_keys VALUES (?, ?, ?, ?)", rows)
        have.update((r[0], (r[1], r[2])) for r in rows)
    return _Keys(
        means=np.array([have[i][0] for i in ids.tolist()], dtype=np.float64),
        ikeys=[have[i][1] for i in ids.tolist()],
    )


def _plan(db, scope, is_new, px_size, threshold, same_dim, in_folder, chunksize, algorithm) -> Iterator[_Task]:
    """Chunk-pair tasks covering every pair that involves at least one new image."""
    buckets = [b for b in _buckets(scope, same_dim, in_folder) if is_new[b].any()]
    if not buckets:
        return
    needed = np.concatenate(buckets)
    keys = search_keys(db, scope.ids[needed], px_size)
    where = {int(p): k for k, p in enumerate(needed.tolist())}
    for part in buckets:
        sub = np.array([where[int(p)] for p in part])
        means, ids, new = keys.means[sub], scope.ids[part], is_new[part]
        if threshold == 0:
            yield from _plan_identical(ids, new, [keys.ikeys[k] for k in sub], chunksize)
        elif algorithm == "chunked":
            yield from _plan_by_brightness(ids, new, means, threshold, chunksize)
        else:
            yield from _plan_by_id(ids, new, chunksize)


def _plan_identical(ids: np.ndarray, new: np.ndarray, ikeys: list[bytes], chunksize: int) -> Iterator[_Task]:
    """Exact duplicates: only images sharing an identity key (O(N) to find) can be identical."""
    groups: dict[bytes, list[int]] = {}
    for position, key in enumerate(ikeys):
        groups.setdefault(key, []).append(position)
    for members in groups.values():
        if len(members) > 1 and new[members].any():
            yield from _plan_by_id(ids[members], new[members], chunksize)


def _plan_by_id(ids: np.ndarray, new: np.ndarray, chunksize: int) -> Iterator[_Task]:
    """id-ordered chunks: every new chunk against every old chunk, itself, and later new chunks."""
    order = np.argsort(ids)
    ids, new = ids[order], new[order]
    new_chunks = _chunks(ids[new], chunksize)
    old_chunks = _chunks(ids[~new], chunksize)
    for i, a in enumerate(new_chunks):
        for b in old_chunks:
            yield _Task(b, a)
        yield _Task(a, None)
        for b in new_chunks[i + 1 :]:
            yield _Task(a, b)


def _plan_by_brightness(ids: np.ndarray, new: np.ndarray, means: np.ndarray, threshold: float,
                        chunksize: int) -> Iterator[_Task]:
    """Chunks cut by mean brightness; chunk pairs further apart than sqrt(threshold) are skipped.

    The MSE is at least the square of the difference of the two images' means (Jensen), in
    every orientation, so a chunk only meets the chunks within sqrt(threshold) of it: far fewer
    tasks than all pairs, for a full search and for new images against the old ones alike.
    """
    reach = np.sqrt(threshold) * (1 + 1e-9) + 1e-9  # slack for the rounding of the means
    new_chunks = _brightness_chunks(ids[new], means[new], chunksize)
    old_chunks = _brightness_chunks(ids[~new], means[~new], chunksize)
    for i, (a, a_lo, a_hi) in enumerate(new_chunks):
        for b, b_lo, b_hi in old_chunks:
            if b_lo - a_hi <= reach and a_lo - b_hi <= reach:
                yield _Task(b, a)
        yield _Task(a, None)
        for b, b_lo, _b_hi in new_chunks[i + 1 :]:
            if b_lo - a_hi > reach:
                break  # sorted by mean: every later chunk is further still
            yield _Task(a, b)


def _brightness_chunks(ids: np.ndarray, means: np.ndarray, chunksize: int) -> list[tuple[tuple[int, ...], float, float]]:
    """(ids, lowest mean, highest mean) of chunks cut from the images sorted by mean."""
    if len(ids) == 0:
        return []
    order = np.argsort(means, kind="stable")
    return [
        (tuple(ids[c].tolist()), float(means[c[0]]), float(means[c[-1]]))
        for c in np.array_split(order, -(-len(ids) // chunksize))
    ]


def _chunks(ids: np.ndarray, size: int) -> list[tuple[int, ...]]:
    if len(ids) == 0:
        return []
    return [tuple(c.tolist()) for c in np.array_split(ids, -(-len(ids) // size))]


# -- running --------------------------------------------------------------------------------------

_worker_conn: sqlite3.Connection | None = None
_worker_px = 0
_worker_cache: OrderedDict = OrderedDict()
_worker_cache_size = 3


def _init_worker(db_path: str, px_size: int, cache_size: int) -> None:
    global _worker_conn, _worker_px, _worker_cache_size
    _worker_conn = store.connect_readonly(db_path)
    _worker_px = px_size
    _worker_cache_size = cache_size


def _coarse(conn, ids: tuple[int, ...], px_size: int, cache: OrderedDict, cache_size: int) -> np.ndarray:
    """Coarse vectors of a chunk (a few hundred bytes an image), from the last chunks read or SQLite."""
    if ids in cache:
        cache.move_to_end(ids)
        return cache[ids]
    cache[ids] = store.load_coarse(conn, ids, len(kernel.grid_edges(px_size)) - 1)
    while len(cache) > cache_size:
        cache.popitem(last=False)
    return cache[ids]


def compare_task(conn, task: _Task, threshold: float, orientations, px_size: int, cache: OrderedDict,
                 cache_size: int) -> tuple[np.ndarray, ...]:
    """Run the kernel on one task: (image_a, image_b, ssd, orientation) arrays, image_a < image_b.

    The bound of every pair comes from cached coarse vectors; only the tensors of candidate
    pairs are read from SQLite, for the exact check.
    """
    same = task.ids_b is None
    ids_a = np.array(task.ids_a, dtype=np.int64)
    ids_b = ids_a if same else np.array(task.ids_b, dtype=np.int64)
    ca = _coarse(conn, task.ids_a, px_size, cache, cache_size)
    cb = ca if same else _coarse(conn, task.ids_b, px_size, cache, cache_size)
    edges = kernel.grid_edges(px_size)
    limit = kernel.ssd_threshold(threshold, px_size * px_size * 3)
    cand = kernel.candidates(ca, cb, kernel.coarse_center(edges), limit, orientations, upper=same)
    rows_at, cols_at = np.unique(cand.rows), np.unique(cand.cols)
    if same:
        rows_at = cols_at = np.union1d(rows_at, cols_at)
    a = store.load_tensors(conn, ids_a[rows_at], px_size)
    b = a if same else store.load_tensors(conn, ids_b[cols_at], px_size)
    m = kernel.confirm(cand, a, rows_at, b, cols_at, limit, orientations)
    pair_a, pair_b, orient = ids_a[m.rows], ids_b[m.cols], m.orient.copy()
    swapped = pair_a > pair_b  # only when a moved image is compared with a newer one
    if swapped.any():
        rows = np.searchsorted(rows_at, m.rows[swapped])
        cols = np.searchsorted(cols_at, m.cols[swapped])
        # a is the lower id in every stored pair: redo the orientation choice from its side
        best = np.stack([kernel.exact_ssd(b[cols], a[rows], o) for o in orientations], axis=1)
        orient[swapped] = np.asarray(orientations)[np.argmin(best, axis=1)]
        pair_a[swapped], pair_b[swapped] = pair_b[swapped], pair_a[swapped].copy()
    return pair_a, pair_b, m.ssd, orient


def _worker_compare(tasks: list[_Task], threshold: float, orientations) -> list[tuple[np.ndarray, ...]]:
    return [
        compare_task(_worker_conn, t, threshold, orientations, _worker_px, _worker_cache, _worker_cache_size)
        for t in tasks
    ]


def _run(db, db_path, search_id, tasks, threshold, orientations, px_size, processes, algorithm, progress,
         started, writer=None) -> tuple[int, int]:
    """Execute tasks (in workers when worth it) and write their pairs (to ``writer``, by default the
    pairs table): (pairs found, workers used)."""
    total_work = sum(t.work for t in tasks) * len(orientations)
    found = 0
    n_values = px_size * px_size * 3
    writer = writer or _PairWriter(db, search_id, n_values)

    def report(done: int) -> None:
        if progress is not None:
            progress(SearchProgress(done, len(tasks), found, time.monotonic() - started))

    if processes == 1 or total_work < INLINE_WORK or len(tasks) < 2:
        cache: OrderedDict = OrderedDict()
        for done, task in enumerate(tasks, start=1):
            found += writer.add(compare_task(db.conn, task, threshold, orientations, px_size, cache, 3))
            report(done)
        writer.flush()
        return found, 0
    cache_size = 10**9 if algorithm == "classic" else 3
    batches = _batches(tasks)
    with WorkerPool(processes, initializer=f"{__name__}:_init_worker", initargs=(db_path, px_size, cache_size)) as pool:
        queue = list(reversed(batches))
        sizes = {}
        done = 0
        while queue or pool.pending:
            while queue and pool.can_submit():
                batch = queue.pop()
                sizes[pool.submit(f"{__name__}:_worker_compare", batch, threshold, orientations)] = len(batch)
            for outcome in pool.collect():
                if outcome.error is not None:
                    raise ImgIndexError(f"a comparison worker failed: {outcome.error}") from outcome.error
                for result in outcome.value:
                    found += writer.add(result)
                done += sizes.pop(outcome.ticket)
                report(done)
    writer.flush()
    return found, processes


def _batches(tasks: list[_Task], min_work: int = 250_000) -> list[list[_Task]]:
    """Group small tasks (tiny buckets) so each worker call carries enough work."""
    batches, current, work = [], [], 0
    for task in tasks:
        current.append(task)
        work += task.work
        if work >= min_work:
            batches.append(current)
            current, work = [], 0
    if current:
        batches.append(current)
    return batches


class _PairWriter:
    """Inserts pairs in batched transactions."""

    def __init__(self, db: Database, search_id: int, n_values: int):
        self.db, self.search_id, self.n_values = db, search_id, n_values
        self.rows: list[tuple] = []
        self.now = _now()

    def add(self, result: tuple[np.ndarray, ...]) -> int:
        image_a, image_b, ssd, orient = result
        for a, b, s, o in zip(image_a.tolist(), image_b.tolist(), ssd.tolist(), orient.tolist()):
            t = kernel.ORIENTATIONS[o]
            self.rows.append((self.search_id, a, b, s / self.n_values, t.rotation, int(t.mirrored), self.now))
        if len(self.rows) >= 5000:
            self.flush()
        return len(image_a)

    def flush(self) -> None:
        if self.rows:
            with self.db.atomic():
                self.db.conn.executemany(
                    "INSERT INTO pairs (search_id, image_a, image_b, mse, rotation, mirrored, found_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    self.rows,
                )
            self.rows = []


class _PairCollector:
    """Keeps pairs in memory instead of writing them (for views that only look, like the report)."""

    def __init__(self, n_values: int):
        self.n_values = n_values
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, result: tuple[np.ndarray, ...]) -> int:
        self.parts.append(result)
        return len(result[0])

    def flush(self) -> None:
        pass

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        a, b, ssd, _ = (np.concatenate(x) for x in zip(*self.parts))
        return a, b, ssd.astype(np.float64) / self.n_values


def near_pairs(db: Database, db_path: str, search_id: int, cap: float, *,
               processes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(scope ids, image_a, image_b, mse) of every pair within MSE ``cap`` under a search's settings.

    Nothing is written: the report uses it to show each image's nearest neighbour beyond the
    threshold, which the pairs table (matches only) cannot tell.
    """
    from imgindex.indexer import resolve_processes

    row = db.execute("SELECT rotate, mirror, same_dim, in_folder, roots FROM searches WHERE id = ?",
                     [search_id]).fetchone()
    rotate, mirror, same_dim, in_folder, roots = bool(row[0]), bool(row[1]), bool(row[2]), bool(row[3]), row[4]
    roots = tuple(json.loads(roots))
    processes = resolve_processes(processes)
    px_size = int(store.get_setting(db, "px_size") or 0)
    scope = _load_scope(db, roots, in_folder)
    n = len(scope.ids)
    algorithm = "classic" if n <= CLASSIC_MAX else "chunked"
    chunksize = _default_chunksize(n, algorithm, processes)
    orientations = kernel.orientation_indices(rotate, mirror)
    tasks = list(_plan(db, scope, np.ones(n, dtype=bool), px_size, cap, same_dim, in_folder, chunksize, algorithm))
    collector = _PairCollector(px_size * px_size * 3)
    _run(db, db_path, None, tasks, cap, orientations, px_size, processes, algorithm, None, time.monotonic(),
         writer=collector)
    return (scope.ids, *collector.pairs())


def _carry(db: Database, search_id: int, base_id: int, old_ids: np.ndarray) -> int:
    """Copy the base search's pairs between images that are still there, in scope and not re-compared."""
    with db.atomic():
        db.execute("CREATE TEMP TABLE IF NOT EXISTS carried_ids (id INTEGER PRIMARY KEY)")
        db.execute("DELETE FROM carried_ids")
        db.conn.executemany("INSERT INTO carried_ids VALUES (?)", [(int(i),) for i in old_ids])
        cursor = db.execute(
            "INSERT INTO pairs (search_id, image_a, image_b, mse, rotation, mirrored, found_at)"
            " SELECT ?, image_a, image_b, mse, rotation, mirrored, found_at FROM pairs"
            # "+": check membership row by row; as index keys, the two IN lists make SQLite probe
            # every (a, b) combination of the scope (4.7 s instead of 4 ms at 20k images)
            " WHERE search_id = ? AND +image_a IN carried_ids AND +image_b IN carried_ids",
            [search_id, base_id],
        )
        return cursor.rowcount


def _write_groups(db: Database, search_id: int, roots: tuple[str, ...], px_size: int,
                  orientations: tuple[int, ...], *, base_id: int | None = None, changed: set[int] = frozenset(),
                  batch: int = 4096) -> int:
    """Connected components of this search's pairs, keepers, and each member's exact MSE to its keeper.

    A group of the base search with the same members, the same keeper and no image added or
    moved since is taken over as it is; only the others cost tensor reads.
    """
    pairs = np.array(db.execute("SELECT image_a, image_b FROM pairs WHERE search_id = ?", [search_id]).fetchall(),
                     dtype=np.int64).reshape(-1, 2)
    comps = groups.components(pairs[:, 0], pairs[:, 1])
    members = {}
    member_ids = [int(i) for c in comps for i in c]
    for start in range(0, len(member_ids), 20000):
        part = member_ids[start : start + 20000]
        for image_id, width, height, size, path in db.execute(
            "SELECT id, width, height, size, path FROM images WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(part)],
        ):
            members[image_id] = groups.Member(image_id, width, height, size, path)
    made = groups.make_groups(comps, members)
    known = _group_rows(db, base_id) if base_id is not None else {}
    fresh, kept = [], []
    for g in made:
        ids = frozenset(m.image_id for m in (g.keeper, *g.others))
        old = known.get(ids)
        if old is not None and old[0][0] == g.keeper.image_id and not ids & changed:
            kept.extend((search_id, g.group_id, *row) for row in old)
        else:
            fresh.append(g)
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO group_members (search_id, group_id, image_id, is_keeper, root, mse_to_keeper, rotation,"
            " mirrored) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            kept,
        )
    n_values = px_size * px_size * 3
    start = 0
    while start < len(fresh):  # groups in batches: one query loads the tensors of a whole batch
        end, size = start, 0
        while end < len(fresh) and (end == start or size + 1 + len(fresh[end].others) <= batch):
            size += 1 + len(fresh[end].others)
            end += 1
        ids = [m.image_id for g in fresh[start:end] for m in (g.keeper, *g.others)]
        tensors = dict(zip(ids, store.load_tensors(db, ids, px_size)))
        rows = []
        for g in fresh[start:end]:
            root = next((r for r in roots if discover.under(os.path.dirname(g.keeper.path), r)), None)
            rows.append((search_id, g.group_id, g.keeper.image_id, 1, root, None, None, None))
            keeper = np.repeat(tensors[g.keeper.image_id][None], len(g.others), axis=0)
            others = np.stack([tensors[m.image_id] for m in g.others])
            ssd = np.stack([kernel.exact_ssd(keeper, others, o) for o in orientations], axis=1)
            for m, row in zip(g.others, ssd):
                k = int(np.argmin(row))
                t = kernel.ORIENTATIONS[orientations[k]]
                rows.append((search_id, g.group_id, m.image_id, 0, root, float(row[k]) / n_values, t.rotation,
                             int(t.mirrored)))
        with db.atomic():
            db.conn.executemany(
                "INSERT INTO group_members (search_id, group_id, image_id, is_keeper, root, mse_to_keeper, rotation,"
                " mirrored) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        start = end
    return len(made)


def _group_rows(db: Database, search_id: int) -> dict[frozenset, list[tuple]]:
    """A search's groups by member set: rows (image_id, is_keeper, root, mse, rotation, mirrored), keeper first."""
    by_group: dict[int, list[tuple]] = {}
    for group_id, *row in db.execute(
        "SELECT group_id, image_id, is_keeper, root, mse_to_keeper, rotation, mirrored FROM group_members"
        " WHERE search_id = ? ORDER BY group_id, is_keeper DESC",
        [search_id],
    ):
        by_group.setdefault(group_id, []).append(tuple(row))
    return {frozenset(r[0] for r in rows): rows for rows in by_group.values()}


def _copy_groups(db: Database, search_id: int, base_id: int) -> int:
    """Nothing was added or removed since the base search: its groups are this search's."""
    with db.atomic():
        db.execute(
            "INSERT INTO group_members (search_id, group_id, image_id, is_keeper, root, mse_to_keeper, rotation,"
            " mirrored) SELECT ?, group_id, image_id, is_keeper, root, mse_to_keeper, rotation, mirrored"
            " FROM group_members WHERE search_id = ?",
            [search_id, base_id],
        )
    return db.execute("SELECT count(DISTINCT group_id) FROM group_members WHERE search_id = ?", [search_id]).fetchone()[0]


def _start_row(db: Database, settings: dict, algorithm: str, processes: int, chunksize: int, base) -> int:
    with db.atomic():
        return db.execute(
            "INSERT INTO searches (started_at, status, similarity, threshold, rotate, mirror, same_dim, in_folder,"
            " roots, px_size, decoder, algorithm, processes, chunksize, base_search_id)"
            " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_now(), settings["similarity"], settings["threshold"], settings["rotate"], settings["mirror"],
             settings["same_dim"], settings["in_folder"], settings["roots"], settings["px_size"], settings["decoder"],
             algorithm, processes, chunksize, base.search_id if base else None],
        ).lastrowid


def _finish_row(db: Database, search_id: int, status: str, started: float,
                report: SearchReport | None = None, max_image_id: int | None = None) -> None:
    """Counts and status in one update, so ``latest_search`` never shows a half-recorded run."""
    counts = [report.images, report.new_images, report.pairs, report.groups] if report else [None] * 4
    with db.atomic():
        db.execute(
            "UPDATE searches SET status = ?, finished_at = ?, duration = ?, images = ?, new_images = ?,"
            " pairs = ?, groups = ?, max_image_id = ? WHERE id = ?",
            [status, _now(), time.monotonic() - started, *counts, max_image_id, search_id],
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
