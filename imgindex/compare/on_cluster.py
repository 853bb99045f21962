"""A search's tasks on a Dask cluster (``imgindex.cluster``): the same plan and the same two steps
(``tasks``) as the local pool, with the data sent to the workers, which never open the SQLite file.

- Chunk pairs (classic plan, identical keys): each chunk's coarse vectors are read here once;
  a chunk of several tasks is scattered to every worker, one of a single task travels with it.
- Range-search tasks (``nearby``): a bucket's arrays (points, grids, coarse vectors, about 450
  bytes an image; not the samples, which would more than double it) are read from the scratch
  folder once and scattered to one worker; the others fetch them from it.
- A few new images (``few``): the point-index lookups run here (they are SQLite queries); the
  pairs found travel with their keys.

Each task's bounds come back as an ``Exact`` step; its candidates' tensors are read here, for
those images only, and sent with it for the exact check. Pairs arrive as from the local pool.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable

import numpy as np

from imgindex.cluster.calls import LOST, Calls, is_lost
from imgindex.cluster.connect import Cluster, ClusterError
from imgindex.compare import kernel, nearby
from imgindex.compare.few import FewTask
from imgindex.compare.nearby import SpaceTask
from imgindex.compare.tasks import Exact, HeldKeys, listed_bounds, space_bounds, task_bounds
from imgindex.db.queries import load_coarse, load_tensors
from imgindex.types import SearchProgress

log = logging.getLogger(__name__)

BOUNDS_WORK = 250_000  # pairs per call at least, as the local pool's batches: tiny buckets' tasks travel together
BOUNDS_WORK_MOST = 4_000_000  # pairs per call at most: a call's candidates stay a few MB
CALLS_PER_WORKER = 8  # calls a search's bounds are cut into, per worker: enough to balance the load. Each
# call costs a fetch and a round trip through the scheduler, on the cores the work needs: a search of
# 200,000 images in 140 calls of 250,000 pairs took 7.6 s on two local workers, in 16 calls 6.9 s
EXACT_PAIRS = 100_000  # candidates per exact-check call, while bounds are still to come


def bounds_batch(items: list, px_size: int, threshold: float, orientations) -> list[Exact]:
    """The bounds of each (kind, task, data) item, on a worker."""
    return [_bounds(kind, task, data, px_size, threshold, orientations) for kind, task, data in items]


def _bounds(kind: str, task, data, px_size: int, threshold: float, orientations) -> Exact:
    if kind == "few":
        keys, pairs = data
        return listed_bounds(keys, px_size, pairs, threshold, orientations)
    if kind == "space":  # the bucket holds every key the task reads
        return space_bounds(None, _bucket(task.prefix, data), task, px_size, threshold, orientations)
    keys_a, keys_b = data
    return task_bounds(keys_a if keys_b is None else HeldKeys.joined(keys_a, keys_b), task, px_size, threshold,
                       orientations)


_BUCKETS: OrderedDict = OrderedDict()  # on a worker: the last buckets' arrays, aligned


def _bucket(prefix: str, arrays: dict) -> nearby.Bucket:
    """A bucket from the arrays Dask delivered, kept for the next calls of its search. Arrays arrive
    packed in one buffer, some of them unaligned, which numpy reads 2-3x slower (a search's
    bounds took 13.7 s of the workers' time instead of 4.3): aligned copies, made once."""
    if prefix not in _BUCKETS:
        _BUCKETS[prefix] = nearby.bucket_of({k: aligned(a) for k, a in arrays.items()})
        while len(_BUCKETS) > 2:
            _BUCKETS.popitem(last=False)
    return _BUCKETS[prefix]


def aligned(a: np.ndarray) -> np.ndarray:
    return np.require(a, requirements=["A", "C"])


def exact_batch(steps: list[Exact], ids: np.ndarray, tensors: np.ndarray, orientations) -> list[tuple]:
    """The exact check of each step, on a worker; ``tensors`` are those of ``ids`` (every step's images)."""
    ids = aligned(ids)
    return [step.run(tensors[np.searchsorted(ids, step.ids)], orientations) for step in steps]


class _Sender:
    """Turns planned tasks into calls with their data, reading each chunk or bucket once."""

    def __init__(self, db, calls: Calls, tasks: list, px_size: int, threshold: float, orientations):
        self.db, self.calls, self.px = db, calls, px_size
        self.threshold, self.orientations = threshold, orientations
        self.grid = len(kernel.grid_edges(px_size)) - 1
        self.uses = Counter(c for t in tasks if not isinstance(t, (SpaceTask, FewTask))
                            for c in (t.ids_a, t.ids_b) if c is not None)
        self.shared: dict = {}  # chunk (ids) or bucket prefix -> scattered future

    def bounds(self, tasks: list) -> None:
        items = [self._item(task) for task in tasks]
        self.calls.submit(("bounds", tasks), bounds_batch, items, self.px, self.threshold, self.orientations)

    def _item(self, task) -> tuple:
        if isinstance(task, FewTask):  # the point-index lookups are SQLite queries: here
            pairs = task.listed(self.db.conn, self.px, self.threshold)
            ids = np.unique(pairs)
            keys = HeldKeys(ids, load_coarse(self.db.conn, ids, self.grid))
            return "few", task, (keys, pairs)
        if isinstance(task, SpaceTask):
            if task.prefix not in self.shared:
                arrays = nearby.bucket_arrays(nearby.held_bucket(self.db, task.prefix, self.px))
                # a future per array, each sent as it is (a list: a dict's keys would be the Dask keys)
                self.shared[task.prefix] = dict(zip(arrays, self.calls.scatter(list(arrays.values()))))
            return "space", task, self.shared[task.prefix]
        keys_b = None if task.ids_b is None else self._chunk(task.ids_b)
        return "chunks", task, (self._chunk(task.ids_a), keys_b)

    def forget_lost(self) -> None:
        """Drop the scattered data that died with a worker: the calls sent again scatter it again."""
        self.shared = {k: v for k, v in self.shared.items() if not is_lost(v)}

    def _chunk(self, ids: tuple[int, ...]):
        if ids in self.shared:
            return self.shared[ids]
        order = np.sort(np.array(ids, dtype=np.int64))
        keys = HeldKeys(order, load_coarse(self.db.conn, order, self.grid))
        if self.uses[ids] > 1:  # a chunk of several tasks: on every worker once, not with each task
            keys = self.shared[ids] = self.calls.scatter(keys)
        return keys

    def exact(self, steps: list[Exact], count: int) -> None:
        ids = np.unique(np.concatenate([step.ids for step in steps]))
        self.calls.submit(("exact", (steps, count)), exact_batch, steps, ids, load_tensors(self.db.conn, ids, self.px),
                          self.orientations)


def call_work(tasks: list, workers: int) -> int:
    """Pairs per bounds call: CALLS_PER_WORKER calls per worker, within BOUNDS_WORK and BOUNDS_WORK_MOST."""
    share = sum(t.work for t in tasks) // (max(workers, 1) * CALLS_PER_WORKER)
    return int(min(max(share, BOUNDS_WORK), BOUNDS_WORK_MOST))


def _batches(tasks: list, per_call: int) -> list[list]:
    """Consecutive tasks, about ``per_call`` pairs a batch (tasks of one bucket or chunk follow each other)."""
    batches, batch, work = [], [], 0
    for task in tasks:
        batch.append(task)
        work += task.work
        if work >= per_call:
            batches.append(batch)
            batch, work = [], 0
    return batches + ([batch] if batch else [])


LOST_MOST = 20  # calls sent again after losing their data before the search gives up


def _again(lost: int, send: _Sender) -> int:
    """Count a call that lost its scattered data and forget the data lost."""
    if lost >= LOST_MOST:
        raise ClusterError(f"Workers kept dying with the data of this search ({lost} calls sent again); nothing"
                           " of it was written. Check the workers' memory and logs, and run it again.")
    log.warning("a Dask worker died with data this search had sent it: sending it again, with the calls that read it")
    send.forget_lost()
    return lost + 1


def run_on_cluster(db, cluster: Cluster, tasks: list, writer, *, threshold: float, orientations, px_size: int,
                   progress: Callable[[SearchProgress], None] | None, started: float) -> tuple[int, int]:
    """Execute tasks on ``cluster`` and hand their pairs to ``writer``: (pairs found, workers)."""
    calls = Calls(cluster)
    send = _Sender(db, calls, tasks, px_size, threshold, orientations)
    waiting = deque(_batches(tasks, call_work(tasks, cluster.workers)))
    exact = []  # (step, its task count) not sent yet
    found = done = lost = 0
    try:
        while waiting or exact or len(calls):
            while not calls.full() and (waiting or exact):
                candidates = sum(len(step.pair) for step, _ in exact)
                if exact and (candidates >= EXACT_PAIRS or not waiting):  # they finish tasks and free memory
                    send.exact([step for step, _ in exact], sum(n for _, n in exact))
                    exact = []
                else:
                    send.bounds(waiting.popleft())
            for (kind, what), result in calls.done(block=True):
                if result is LOST:  # sent again, its data scattered again
                    lost = _again(lost, send)
                    if kind == "bounds":
                        waiting.appendleft(what)
                    else:  # the steps again, the tasks they finish counted once
                        steps, count = what
                        exact += [(step, count if k == 0 else 0) for k, step in enumerate(steps)]
                    continue
                if kind == "bounds":
                    exact += [(step, 1) for step in result if len(step.pair)]
                    done += sum(1 for step in result if not len(step.pair))
                else:
                    found += sum(writer.add(pairs) for pairs in result)
                    done += what[1]
                if progress is not None:
                    progress(SearchProgress(done, len(tasks), found, time.monotonic() - started))
    finally:
        calls.close()
    writer.flush()
    return found, cluster.workers
