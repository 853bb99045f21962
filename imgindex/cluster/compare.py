"""A search's tasks on a Dask cluster: the same plan and the same two steps (``compare.tasks``) as
the local pool, with the data sent to the workers, which never open the SQLite file.

- Chunk pairs (classic plan, identical keys): each chunk's coarse vectors are read here once;
  a chunk of several tasks is scattered to every worker, one of a single task travels with it.
- Range-search tasks (``nearby``): a bucket's arrays (points, grids, coarse vectors, samples,
  about 1 KB an image) are read from the scratch folder once and scattered.
- A few new images (``few``): the point-index lookups run here (they are SQLite queries); the
  pairs found travel with their keys.

Each task's bounds come back as an ``Exact`` step; its candidates' tensors are read here, for
those images only, and sent with it for the exact check. Pairs arrive as from the local pool.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable

import numpy as np

from imgindex.cluster.calls import Calls
from imgindex.cluster.connect import Cluster
from imgindex.compare import kernel, nearby
from imgindex.compare.few import FewTask
from imgindex.compare.nearby import SpaceTask
from imgindex.compare.tasks import Exact, HeldKeys, listed_bounds, space_bounds, task_bounds
from imgindex.db.queries import load_coarse, load_tensors
from imgindex.types import SearchProgress


def chunk_bounds(task, keys_a: HeldKeys, keys_b: HeldKeys | None, px_size: int, threshold: float,
                 orientations) -> Exact:
    keys = keys_a if keys_b is None else HeldKeys.joined(keys_a, keys_b)
    return task_bounds(keys, task, px_size, threshold, orientations)


def bucket_bounds(bucket: nearby.Bucket, task: SpaceTask, px_size: int, threshold: float, orientations) -> Exact:
    return space_bounds(None, bucket, task, px_size, threshold, orientations)  # the bucket holds every key


def pairs_bounds(keys: HeldKeys, pairs: np.ndarray, px_size: int, threshold: float, orientations) -> Exact:
    return listed_bounds(keys, px_size, pairs, threshold, orientations)


def exact_pairs(step: Exact, tensors: np.ndarray, orientations) -> tuple[np.ndarray, ...]:
    return step.run(tensors, orientations)


class _Sender:
    """Turns planned tasks into calls with their data, reading each chunk or bucket once."""

    def __init__(self, db, calls: Calls, tasks: list, px_size: int, threshold: float, orientations):
        self.db, self.calls, self.px = db, calls, px_size
        self.threshold, self.orientations = threshold, orientations
        self.grid = len(kernel.grid_edges(px_size)) - 1
        self.uses = Counter(c for t in tasks if not isinstance(t, (SpaceTask, FewTask))
                            for c in (t.ids_a, t.ids_b) if c is not None)
        self.shared: dict = {}  # chunk (ids) or bucket prefix -> scattered future

    def bounds(self, task) -> None:
        args = (self.px, self.threshold, self.orientations)
        if isinstance(task, FewTask):
            pairs = task.listed(self.db.conn, self.px, self.threshold)
            ids = np.unique(pairs)
            keys = HeldKeys(ids, load_coarse(self.db.conn, ids, self.grid), nearby.load_samples(self.db.conn, ids, self.px))
            self.calls.submit(("bounds", task), pairs_bounds, keys, pairs, *args)
        elif isinstance(task, SpaceTask):
            if task.prefix not in self.shared:
                self.shared[task.prefix] = self.calls.scatter(nearby.held_bucket(self.db, task.prefix, self.px))
            self.calls.submit(("bounds", task), bucket_bounds, self.shared[task.prefix], task, *args)
        else:
            keys_b = None if task.ids_b is None else self._chunk(task.ids_b)
            self.calls.submit(("bounds", task), chunk_bounds, task, self._chunk(task.ids_a), keys_b, *args)

    def _chunk(self, ids: tuple[int, ...]):
        if ids in self.shared:
            return self.shared[ids]
        order = np.array(ids, dtype=np.int64)
        keys = HeldKeys(np.sort(order), load_coarse(self.db.conn, np.sort(order), self.grid))
        if self.uses[ids] > 1:
            keys = self.shared[ids] = self.calls.scatter(keys)
        return keys

    def exact(self, task, step: Exact) -> None:
        tensors = load_tensors(self.db.conn, step.ids, self.px)
        self.calls.submit(("exact", task), exact_pairs, step, tensors, self.orientations)


def run_on_cluster(db, cluster: Cluster, tasks: list, writer, *, threshold: float, orientations, px_size: int,
                   progress: Callable[[SearchProgress], None] | None, started: float) -> tuple[int, int]:
    """Execute tasks on ``cluster`` and hand their pairs to ``writer``: (pairs found, workers)."""
    calls = Calls(cluster)
    send = _Sender(db, calls, tasks, px_size, threshold, orientations)
    waiting, exact = deque(tasks), deque()
    found = done = 0
    try:
        while waiting or exact or len(calls):
            while not calls.full() and (exact or waiting):
                if exact:  # the exact checks first: they finish tasks and free their memory
                    send.exact(*exact.popleft())
                else:
                    send.bounds(waiting.popleft())
            for (kind, task), result in calls.done(block=True):
                if kind == "bounds" and len(result.pair):
                    exact.append((task, result))
                    continue
                if kind == "exact":
                    found += writer.add(result)
                done += 1
                if progress is not None:
                    progress(SearchProgress(done, len(tasks), found, time.monotonic() - started))
    finally:
        calls.cancel()
    writer.flush()
    return found, cluster.workers
