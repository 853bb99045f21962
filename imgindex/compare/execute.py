"""Run a search's tasks through the kernel, here or in worker processes, and collect pairs.

Chunk-pair tasks (classic, identical keys): the bound of every pair comes from cached coarse
vectors (``search_keys.coarse``); workers keep the last chunks they read (the classic plan: all
of them). Range-search tasks (chunked): the arrays ``nearby`` wrote to the scratch folder,
mapped read-only. Either way only the tensors of pairs no bound ruled out are read from SQLite,
for the exact check, and workers open the index read-only. Small searches (below INLINE_WORK)
run here: starting workers costs more.
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.connect import connect_readonly
from imgindex.db.queries import load_coarse, load_tensors
from imgindex.db.runs import now
from imgindex.errors import ImgIndexError
from imgindex.compare import kernel, nearby, space
from imgindex.compare.nearby import SpaceTask
from imgindex.compare.plan import Task
from imgindex.types import SearchProgress
from imgindex.workers import BatchRunner

if TYPE_CHECKING:
    from sqlite_utils import Database

INLINE_WORK = 20_000_000  # pairs x orientations (~0.2 s here) below which starting workers (~0.3 s) does not pay
BATCH_WORK = 250_000  # pairs per worker call: small tasks (tiny buckets) travel together


@dataclass
class CompareContext:
    """What a comparing process keeps between tasks: a connection and the coarse vectors of recent chunks."""

    conn: sqlite3.Connection
    px_size: int
    cache_size: int = 3
    cache: OrderedDict = field(default_factory=OrderedDict)
    buckets: dict = field(default_factory=dict)  # scratch prefix -> nearby.Bucket (mapped arrays)

    def coarse(self, ids: tuple[int, ...]) -> np.ndarray:
        """Coarse vectors of a chunk, from the last chunks read or SQLite."""
        if ids in self.cache:
            self.cache.move_to_end(ids)
            return self.cache[ids]
        self.cache[ids] = load_coarse(self.conn, ids, len(kernel.grid_edges(self.px_size)) - 1)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return self.cache[ids]


def open_context(db_path: str, px_size: int, cache_size: int) -> CompareContext:
    """A worker's context: its own read-only connection."""
    return CompareContext(connect_readonly(db_path), px_size, cache_size)


def compare_batch(context: CompareContext, tasks: list, threshold: float, orientations) -> list[tuple]:
    return [_one(context, t, threshold, orientations) for t in tasks]


def _one(context: CompareContext, task, threshold: float, orientations) -> tuple[np.ndarray, ...]:
    if hasattr(task, "compare"):  # a task that knows its own work (``few.FewTask``, which builds on this module)
        return task.compare(context.conn, context.px_size, threshold, orientations)
    if isinstance(task, SpaceTask):
        return compare_space_task(context, task, threshold, orientations)
    return compare_task(context, task, threshold, orientations)


def compare_task(context: CompareContext, task: Task, threshold: float, orientations) -> tuple[np.ndarray, ...]:
    """Run the kernel on one task: (image_a, image_b, ssd, orientation) arrays, image_a < image_b.

    The bound of every pair comes from cached coarse vectors; only the tensors of candidate
    pairs are read from SQLite, for the exact check.
    """
    same = task.ids_b is None
    ids_a = np.array(task.ids_a, dtype=np.int64)
    ids_b = ids_a if same else np.array(task.ids_b, dtype=np.int64)
    conn, px_size = context.conn, context.px_size
    ca = context.coarse(task.ids_a)
    cb = ca if same else context.coarse(task.ids_b)
    edges = kernel.grid_edges(px_size)
    limit = kernel.ssd_threshold(threshold, px_size * px_size * 3)
    cand = kernel.candidates(ca, cb, kernel.coarse_center(edges), limit, orientations, upper=same)
    rows_at, cols_at = np.unique(cand.rows), np.unique(cand.cols)
    if same:
        rows_at = cols_at = np.union1d(rows_at, cols_at)
    a = load_tensors(conn, ids_a[rows_at], px_size)
    b = a if same else load_tensors(conn, ids_b[cols_at], px_size)
    # a moved image compared with a newer one: stored with the lower id first, seen from its side
    m = kernel.confirm(cand, a, rows_at, b, cols_at, limit, orientations,
                       flip=lambda rows, cols: ids_a[rows] > ids_b[cols])
    return (*_lower_first(ids_a[m.rows], ids_b[m.cols]), m.ssd, m.orient)


def _lower_first(ids_a: np.ndarray, ids_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs' ids, the lower one first (their orientations already seen from its side)."""
    return np.minimum(ids_a, ids_b), np.maximum(ids_a, ids_b)


def compare_space_task(context: CompareContext, task: SpaceTask, threshold: float, orientations):
    """A block of one set against its neighbours in another (``nearby``): pairs in neighbouring
    cells, then the orbit-feature distance, the block-sum bound in each orientation, the samples'
    SSD and the exact SSD, each stage on what the last left. Returns pairs with the lower id first."""
    kept = context.buckets.get(task.prefix)
    if kept is None:
        kept = context.buckets[task.prefix] = nearby.open_bucket(task.prefix)
    bucket = nearby.open_bucket(task.prefix, kept.grids, kept.meta)
    left, right = bucket.grid(task.prefix, task.left), bucket.grid(task.prefix, task.right)
    reach = space.reach(float(bucket.meta["radius"]), float(bucket.meta["points_norm"]))
    found_a, found_b = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for i, j in space.pair_blocks(left, task.lo, task.hi, right, bucket.meta["half" if task.same else "full"],
                                  same=task.same):
        pa, pb = left.order[i], right.order[j]
        keep = space.close(bucket.points[pa], bucket.points[pb], reach)
        found_a.append(pa[keep])
        found_b.append(pb[keep])
    pa, pb = np.concatenate(found_a), np.concatenate(found_b)
    if len(pa) == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty, empty
    ids = np.asarray(bucket.ids)
    coarse, at = _coarse_of(context, bucket, np.union1d(pa, pb))
    norm = float(bucket.meta["coarse_norm"]) if bucket.coarse is not None else nearby.largest_norm(coarse)
    return _confirm(context.conn, context.px_size, ids, pa, pb, coarse, at, norm, bucket.samples, threshold,
                    orientations)


def compare_listed(conn, px_size: int, pairs: np.ndarray, threshold: float, orientations) -> tuple[np.ndarray, ...]:
    """Listed candidate pairs ((k, 2) ids, lower first; ``points``): the block-sum bound in each
    orientation, the samples' SSD and the exact SSD, all read from SQLite for these images only."""
    ids = np.unique(pairs)
    if len(ids) == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty, empty
    edges = kernel.grid_edges(px_size)
    coarse = (load_coarse(conn, ids, len(edges) - 1) - kernel.coarse_center(edges)).astype(np.float32)
    pa, pb = np.searchsorted(ids, pairs[:, 0]), np.searchsorted(ids, pairs[:, 1])
    return _confirm(conn, px_size, ids, pa, pb, coarse, np.arange(len(ids)), nearby.largest_norm(coarse), None,
                    threshold, orientations)


def _confirm(conn, px_size: int, ids: np.ndarray, pa, pb, coarse, at, norm: float, samples, threshold: float,
             orientations) -> tuple[np.ndarray, ...]:
    """Pairs (positions pa, pb in ``ids``) through the block-sum bound, the samples' SSD and the exact
    SSD; ``coarse`` holds the centred coarse vectors of positions ``at`` (ascending)."""
    empty = np.empty(0, np.int64)
    limit = kernel.ssd_threshold(threshold, px_size * px_size * 3)
    pair, orient = kernel.oriented_close(coarse, np.searchsorted(at, pa), np.searchsorted(at, pb),
                                         space.reach(float(np.sqrt(limit)), norm), orientations)
    if len(pair) == 0:
        return empty, empty, empty, empty
    pair, orient = _sample_close(conn, px_size, ids, samples, pa, pb, pair, orient, limit, orientations)
    if len(pair) == 0:
        return empty, empty, empty, empty
    wanted = np.union1d(pa[pair], pb[pair])  # pair: one row per orientation in reach
    tensors = load_tensors(conn, ids[wanted], px_size)
    ia, ib = np.searchsorted(wanted, pa), np.searchsorted(wanted, pb)  # valid where a pair is in reach
    flip = ids[pa] > ids[pb]  # stored with the lower id first: seen from the right side's image
    m = kernel.confirm_pairs(tensors, ia, tensors, ib, pair, orient, limit, orientations, flip=flip)
    return (*_lower_first(ids[pa[m.rows]], ids[pb[m.rows]]), m.ssd, m.orient)


def _sample_close(conn, px_size: int, ids: np.ndarray, samples, pa, pb, pair, orient, limit, orientations):
    """The (pair, orientation) candidates whose samples' SSD (a part of the pair's) is within the limit;
    ``samples``: mapped for every position, or None to read them from SQLite."""
    at = np.union1d(pa[pair], pb[pair])
    samples = samples[at] if samples is not None else nearby.load_samples(conn, ids[at], px_size)
    ia, ib = np.searchsorted(at, pa), np.searchsorted(at, pb)
    keep_pair, keep_orient = [], []
    for o in orientations:
        k = pair[orient == o]
        for start in range(0, len(k), 16384):
            part = k[start : start + 16384]
            within = kernel.exact_ssd(samples[ia[part]], samples[ib[part]], o) <= limit
            keep_pair.append(part[within])
            keep_orient.append(np.full(int(within.sum()), o, dtype=np.int64))
    return np.concatenate(keep_pair), np.concatenate(keep_orient)


def _coarse_of(context: CompareContext, bucket: nearby.Bucket, positions: np.ndarray):
    """(centred float32 coarse vectors, the positions they belong to): mapped, or read from SQLite."""
    if bucket.coarse is not None:
        return bucket.coarse[positions], positions
    edges = kernel.grid_edges(context.px_size)
    found = load_coarse(context.conn, np.asarray(bucket.ids)[positions], len(edges) - 1)
    return (found - kernel.coarse_center(edges)).astype(np.float32), positions


def run_tasks(db: Database, db_path: str, tasks: list[Task], writer, *, threshold: float, orientations,
              px_size: int, processes: int, algorithm: str, progress: Callable[[SearchProgress], None] | None,
              started: float) -> tuple[int, int]:
    """Execute tasks and hand their pairs to ``writer``: (pairs found, workers used)."""
    total_work = sum(t.work for t in tasks) * len(orientations)
    workers = processes if total_work >= INLINE_WORK else 1
    runner = BatchRunner(compare_batch, processes=workers, args=(threshold, orientations),
                         context=CompareContext(db.conn, px_size), initializer=open_context,
                         initargs=(db_path, px_size, 10**9 if algorithm == "classic" else 3), batch_work=BATCH_WORK)
    found = 0
    try:
        for done, (_task, result) in enumerate(runner.map((t, t.work) for t in tasks), start=1):
            found += writer.add(result)
            if progress is not None:
                progress(SearchProgress(done, len(tasks), found, time.monotonic() - started))
    except Exception as exc:
        if not runner.workers_started or isinstance(exc, ImgIndexError):
            raise
        raise ImgIndexError(f"a comparison worker failed: {exc}") from exc
    finally:
        runner.close()
    writer.flush()
    return found, runner.workers_started


class PairWriter:
    """Inserts pairs in batched transactions, each batch sorted by the table's key: 1.1M pairs
    took 28 s in the order found and 8 s sorted in batches of 100,000 (with a 64 MB page cache).
    The rows belong to the chain ``pair_set`` from search ``search_id`` on (``persist``)."""

    batch = 100_000

    def __init__(self, db: Database, pair_set: int, search_id: int, n_values: int):
        self.db, self.pair_set, self.search_id, self.n_values = db, pair_set, search_id, n_values
        self.rows: list[tuple] = []
        self.now = now()

    def add(self, result: tuple[np.ndarray, ...]) -> int:
        image_a, image_b, ssd, orient = result
        for a, b, s, o in zip(image_a.tolist(), image_b.tolist(), ssd.tolist(), orient.tolist()):
            t = kernel.ORIENTATIONS[o]
            self.rows.append((self.pair_set, a, b, s / self.n_values, t.rotation, int(t.mirrored), self.now,
                              self.search_id))
        if len(self.rows) >= self.batch:
            self.flush()
        return len(image_a)

    def flush(self) -> None:
        if self.rows:
            self.rows.sort()
            with self.db.atomic():
                self.db.conn.executemany(
                    "INSERT INTO pair_rows (pair_set, image_a, image_b, mse, rotation, mirrored, found_at, found_in)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    self.rows,
                )
            self.rows = []


class PairCollector:
    """Keeps pairs in memory instead of writing them (for views that only look, like the report)."""

    def __init__(self, n_values: int):
        self.n_values = n_values
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, result: tuple[np.ndarray, ...]) -> int:
        self.parts.append(result)
        return len(result[0])

    def flush(self) -> None:
        pass

    def found(self) -> tuple[np.ndarray, ...]:
        """(image_a, image_b, ssd, orientation) of every pair, as the tasks returned them."""
        if not self.parts:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty, empty
        return tuple(np.concatenate(x) for x in zip(*self.parts))

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b, ssd, _ = self.found()
        return a, b, ssd.astype(np.float64) / self.n_values
