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
from imgindex.compare import kernel, nearby
from imgindex.compare.few import FewTask
from imgindex.compare.on_cluster import run_on_cluster
from imgindex.compare.nearby import SpaceTask
from imgindex.compare.plan import Task
from imgindex.compare.tasks import Exact, listed_bounds, space_bounds, task_bounds
from imgindex.types import SearchProgress
from imgindex.workers import BatchRunner

if TYPE_CHECKING:
    from sqlite_utils import Database

# pairs x orientations (~0.55 s here) below which workers, ~0.3 s to start and then half the time, do not
# pay: a cold 5k 'similar' compare took 0.69 s in two workers, 0.45 s here
INLINE_WORK = 60_000_000
BATCH_WORK = 250_000  # pairs per worker call: small tasks (tiny buckets) travel together


@dataclass
class CompareContext:
    """What a comparing process keeps between tasks: a connection (the ``tasks.Keys`` of a local
    worker), the coarse vectors of recent chunks and the mapped arrays of recent buckets."""

    conn: sqlite3.Connection
    px_size: int
    cache_size: int = 3
    cache: OrderedDict = field(default_factory=OrderedDict)
    buckets: dict = field(default_factory=dict)  # scratch prefix -> nearby.Bucket (mapped arrays)

    def coarse(self, ids) -> np.ndarray:
        """Coarse vectors of a chunk (a tuple: from the last chunks read) or of any ids, from SQLite."""
        grid = len(kernel.grid_edges(self.px_size)) - 1
        if not isinstance(ids, tuple):
            return load_coarse(self.conn, ids, grid)
        if ids in self.cache:
            self.cache.move_to_end(ids)
            return self.cache[ids]
        self.cache[ids] = load_coarse(self.conn, ids, grid)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return self.cache[ids]

    def samples(self, ids: np.ndarray) -> np.ndarray:
        return nearby.load_samples(self.conn, ids, self.px_size)

    @property
    def has_samples(self) -> bool:
        return True

    def bucket(self, prefix: str) -> nearby.Bucket:
        """A bucket's arrays, mapped again for this task (the grids and small facts kept)."""
        kept = self.buckets.get(prefix)
        if kept is None:
            kept = self.buckets[prefix] = nearby.open_bucket(prefix)
        return nearby.open_bucket(prefix, kept.grids, kept.meta)


def open_context(db_path: str, px_size: int, cache_size: int) -> CompareContext:
    """A worker's context: its own read-only connection."""
    return CompareContext(connect_readonly(db_path), px_size, cache_size)


def compare_batch(context: CompareContext, tasks: list, threshold: float, orientations) -> list[tuple]:
    return [_one(context, t, threshold, orientations) for t in tasks]


def _one(context: CompareContext, task, threshold: float, orientations) -> tuple[np.ndarray, ...]:
    """Both steps of a task here: the bounds, then the exact check on the tensors of what is left."""
    step = bounds(context, task, threshold, orientations)
    return step.run(load_tensors(context.conn, step.ids, context.px_size), orientations)


def bounds(context: CompareContext, task, threshold: float, orientations) -> Exact:
    """The first step of any task, its keys read from the index."""
    px = context.px_size
    if isinstance(task, FewTask):
        return listed_bounds(context, px, task.listed(context.conn, px, threshold), threshold, orientations)
    if isinstance(task, SpaceTask):
        return space_bounds(context, context.bucket(task.prefix), task, px, threshold, orientations)
    return task_bounds(context, task, px, threshold, orientations)


def run_tasks(db: Database, db_path: str, tasks: list[Task], writer, *, threshold: float, orientations,
              px_size: int, processes: int, algorithm: str, progress: Callable[[SearchProgress], None] | None,
              started: float, cluster=None) -> tuple[int, int]:
    """Execute tasks and hand their pairs to ``writer``: (pairs found, workers used). With a
    ``cluster`` (``imgindex.cluster``), on its workers, unless the work is too small for the local
    pool to start its own (then here, as the pool would)."""
    total_work = sum(t.work for t in tasks) * len(orientations)
    if cluster is not None and total_work >= INLINE_WORK:
        return run_on_cluster(db, cluster, tasks, writer, threshold=threshold, orientations=orientations,
                              px_size=px_size, progress=progress, started=started)
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

    def __init__(self, db: Database, pair_set: int, search_id: int, n_values: int, vet=None):
        self.db, self.pair_set, self.search_id, self.n_values = db, pair_set, search_id, n_values
        self.vet = vet  # ``compare.vetting.MotionVet`` for the pixel pass's pairs, or None
        self.rows: list[tuple] = []
        self.now = now()

    def add(self, result: tuple[np.ndarray, ...], signal: str = "pixels", score: np.ndarray | None = None) -> int:
        """Queue pairs (image_a, image_b, ssd, orientation) matched by ``signal``; ``score``: its
        scores (None: pixels, whose score is the MSE). Returns how many were kept (``vet``)."""
        if self.vet is not None and signal == "pixels":
            result = self.vet.kept(result)
        image_a, image_b, ssd, orient = result
        mse = ssd.astype(np.float64) / self.n_values
        score = mse if score is None else score
        for a, b, m, o, s in zip(image_a.tolist(), image_b.tolist(), mse.tolist(), orient.tolist(), score.tolist()):
            t = kernel.ORIENTATIONS[o]
            self.rows.append((self.pair_set, a, b, m, t.rotation, int(t.mirrored), self.now, self.search_id,
                              signal, s))
        if len(self.rows) >= self.batch:
            self.flush()
        return len(image_a)

    def flush(self) -> None:
        if self.rows:
            self.rows.sort()
            with self.db.atomic():
                self.db.conn.executemany(
                    "INSERT INTO pair_rows (pair_set, image_a, image_b, mse, rotation, mirrored, found_at, found_in,"
                    " signal, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    self.rows,
                )
            self.rows = []


class PairCollector:
    """Keeps pairs in memory instead of writing them (for views that only look, like the report)."""

    def __init__(self, n_values: int, vet=None):
        self.n_values = n_values
        self.vet = vet  # ``compare.vetting.MotionVet``, or None
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, result: tuple[np.ndarray, ...]) -> int:
        if self.vet is not None:
            result = self.vet.kept(result)
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
