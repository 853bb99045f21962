"""What each comparison task computes, in two steps, wherever it runs.

1. ``bounds``: from the images' search keys (coarse vectors, samples), exact lower bounds rule out
   nearly every pair; what is left is an ``Exact`` step, which names the images it needs.
2. ``Exact.run``: the exact SSD of those candidates, from their tensors, in the orientations searched.

Flows in: a task (``plan.Task``, ``nearby.SpaceTask``, ``few.FewTask`` or listed pairs) and a
source of keys: a local worker's read-only connection (``execute.CompareContext``), or ``HeldKeys``
the coordinator sent with the task (a cluster worker, which never opens SQLite). Flows out:
(image_a, image_b, ssd, orientation) arrays, the lower id first. A local worker runs both steps
in one call; a cluster runs them as two tasks, the coordinator reading the tensors in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from imgindex.compare import kernel, nearby, space
from imgindex.compare.nearby import SpaceTask
from imgindex.compare.plan import Task

EMPTY = np.empty(0, np.int64)


class Keys(Protocol):
    """Where a task's search keys come from."""

    def coarse(self, ids) -> np.ndarray:
        """Raw coarse vectors of ``ids`` (in that order): (k, g, g, 3) float64."""

    def samples(self, ids: np.ndarray) -> np.ndarray:
        """Samples (``kernel.sample``) of ``ids`` (distinct, in that order): (k, s, s, 3) uint8."""

    @property
    def has_samples(self) -> bool:
        """Whether ``samples`` can answer (else the samples' stage is left out: the exact check decides)."""


@dataclass(frozen=True)
class HeldKeys:
    """Keys of some images, held in memory: what a cluster worker is sent instead of a connection."""

    ids: np.ndarray  # ascending
    coarse_rows: np.ndarray
    sample_rows: np.ndarray | None = None

    def _at(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        at = np.searchsorted(self.ids, ids)
        if len(ids) and (at.max() >= len(self.ids) or np.any(self.ids[at] != ids)):
            raise KeyError("search keys missing for some images of this task")
        return at

    def coarse(self, ids) -> np.ndarray:
        return self.coarse_rows[self._at(ids)]

    def samples(self, ids: np.ndarray) -> np.ndarray:
        if self.sample_rows is None:
            raise KeyError("samples were not sent with this task")
        return self.sample_rows[self._at(ids)]

    @property
    def has_samples(self) -> bool:
        return self.sample_rows is not None

    @staticmethod
    def joined(*parts: HeldKeys) -> HeldKeys:
        """One HeldKeys for the images of all ``parts`` (a chunk pair's two chunks)."""
        ids = np.concatenate([p.ids for p in parts])
        ids, first = np.unique(ids, return_index=True)
        coarse = np.concatenate([p.coarse_rows for p in parts])[first]
        samples = None
        if all(p.sample_rows is not None for p in parts):
            samples = np.concatenate([p.sample_rows for p in parts])[first]
        return HeldKeys(ids, coarse, samples)


@dataclass(frozen=True)
class Exact:
    """A task's last step: candidate k = (ids[ia[k]], ids[ib[k]]) in the orientations ``orient``
    lists for it (rows ``pair`` == k), checked exactly against the SSD ``limit``."""

    ids: np.ndarray  # ascending: the images whose tensors the check reads
    ia: np.ndarray
    ib: np.ndarray
    pair: np.ndarray
    orient: np.ndarray
    limit: float

    def run(self, tensors: np.ndarray, orientations) -> tuple[np.ndarray, ...]:
        """The candidates within the limit, in their best orientation, seen from the lower id; ``tensors``
        are those of ``ids``."""
        if len(self.pair) == 0:
            return EMPTY, EMPTY, EMPTY, EMPTY
        flip = self.ids[self.ia] > self.ids[self.ib]  # stored with the lower id first: seen from its side
        m = kernel.confirm_pairs(tensors, self.ia, tensors, self.ib, self.pair, self.orient, self.limit,
                                 orientations, flip=flip)
        a, b = self.ids[self.ia[m.rows]], self.ids[self.ib[m.rows]]
        return np.minimum(a, b), np.maximum(a, b), m.ssd, m.orient


def exact_step(ids: np.ndarray, pa: np.ndarray, pb: np.ndarray, pair: np.ndarray, orient: np.ndarray,
               limit: float) -> Exact:
    """The Exact step of candidates (pair k = positions pa[k], pb[k] in ``ids``, rows ``pair`` with
    ``orient``), keeping only the pairs and images some candidate names."""
    used, pair = np.unique(pair, return_inverse=True)
    a, b = ids[pa[used]], ids[pb[used]]
    need = np.union1d(a, b)
    return Exact(need, np.searchsorted(need, a), np.searchsorted(need, b), pair.reshape(-1), orient, limit)


def task_bounds(keys: Keys, task: Task, px_size: int, threshold: float, orientations) -> Exact:
    """A chunk pair (classic plan, identical keys): the block-sum bound of every pair from the coarse vectors."""
    same = task.ids_b is None
    ids_a = np.array(task.ids_a, dtype=np.int64)
    ids_b = ids_a if same else np.array(task.ids_b, dtype=np.int64)
    ca = keys.coarse(task.ids_a)
    cb = ca if same else keys.coarse(task.ids_b)
    edges = kernel.grid_edges(px_size)
    limit = kernel.ssd_threshold(threshold, px_size * px_size * 3)
    cand = kernel.candidates(ca, cb, kernel.coarse_center(edges), limit, orientations, upper=same)
    # one pair number per (row, col), whatever the orientations it is a candidate in
    key = cand.rows * len(ids_b) + cand.cols
    pairs, number = np.unique(key, return_inverse=True)
    ids = np.concatenate([ids_a, ids_b])
    return exact_step(ids, pairs // len(ids_b), len(ids_a) + pairs % len(ids_b), number.reshape(-1), cand.orient,
                      limit)


def space_bounds(keys: Keys, bucket: nearby.Bucket, task: SpaceTask, px_size: int, threshold: float,
                 orientations) -> Exact:
    """A block of one set against its neighbours in another (``nearby``): pairs in neighbouring
    cells, then the orbit-feature distance, the block-sum bound in each orientation and the samples' SSD."""
    left, right = bucket.grid(task.prefix, task.left), bucket.grid(task.prefix, task.right)
    reach = space.reach(float(bucket.meta["radius"]), float(bucket.meta["points_norm"]))
    found_a, found_b = [EMPTY], [EMPTY]
    for i, j in space.pair_blocks(left, task.lo, task.hi, right, bucket.meta["half" if task.same else "full"],
                                  same=task.same):
        pa, pb = left.order[i], right.order[j]
        keep = space.close(bucket.points[pa], bucket.points[pb], reach)
        found_a.append(pa[keep])
        found_b.append(pb[keep])
    pa, pb = np.concatenate(found_a), np.concatenate(found_b)
    ids = np.asarray(bucket.ids)
    limit = kernel.ssd_threshold(threshold, px_size * px_size * 3)
    if len(pa) == 0:
        return exact_step(ids, pa, pb, EMPTY, EMPTY, limit)
    positions = np.union1d(pa, pb)
    if bucket.coarse is not None:
        coarse, norm = bucket.coarse[positions], float(bucket.meta["coarse_norm"])
    else:
        coarse = _centred(keys.coarse(ids[positions]), px_size)
        norm = nearby.largest_norm(coarse)
    return _bounds(keys, px_size, ids, pa, pb, coarse, positions, norm, bucket.samples, limit, orientations)


def listed_bounds(keys: Keys, px_size: int, pairs: np.ndarray, threshold: float, orientations) -> Exact:
    """Listed candidate pairs ((k, 2) ids, lower first; ``few``): the block-sum bound in each
    orientation and the samples' SSD."""
    ids = np.unique(pairs)
    limit = kernel.ssd_threshold(threshold, px_size * px_size * 3)
    if len(ids) == 0:
        return exact_step(ids, EMPTY, EMPTY, EMPTY, EMPTY, limit)
    coarse = _centred(keys.coarse(ids), px_size)
    pa, pb = np.searchsorted(ids, pairs[:, 0]), np.searchsorted(ids, pairs[:, 1])
    return _bounds(keys, px_size, ids, pa, pb, coarse, np.arange(len(ids)), nearby.largest_norm(coarse), None,
                   limit, orientations)


def _centred(coarse: np.ndarray, px_size: int) -> np.ndarray:
    return (coarse - kernel.coarse_center(kernel.grid_edges(px_size))).astype(np.float32)


def _bounds(keys: Keys, px_size: int, ids: np.ndarray, pa, pb, coarse, at, norm: float, samples, limit: float,
            orientations) -> Exact:
    """Pairs (positions pa, pb in ``ids``) through the block-sum bound and the samples' SSD; ``coarse``
    holds the centred coarse vectors of positions ``at`` (ascending). Without samples at hand (a
    cluster worker is not sent them: 57% of a bucket's bytes, and after the block bound they rule
    out little) the exact check takes what the block bound left: the same pairs come out."""
    pair, orient = kernel.oriented_close(coarse, np.searchsorted(at, pa), np.searchsorted(at, pb),
                                         space.reach(float(np.sqrt(limit)), norm), orientations)
    if len(pair) and (samples is not None or (keys is not None and keys.has_samples)):
        pair, orient = _sample_close(keys, ids, samples, pa, pb, pair, orient, limit, orientations)
    return exact_step(ids, pa, pb, pair, orient, limit)


def _sample_close(keys: Keys, ids: np.ndarray, samples, pa, pb, pair, orient, limit, orientations):
    """The (pair, orientation) candidates whose samples' SSD (a part of the pair's) is within the limit;
    ``samples``: held for every position, or None to ask ``keys``."""
    at = np.union1d(pa[pair], pb[pair])
    samples = samples[at] if samples is not None else keys.samples(ids[at])
    ia, ib = np.searchsorted(at, pa), np.searchsorted(at, pb)
    keep_pair, keep_orient = [EMPTY], [EMPTY]
    for o in orientations:
        k = pair[orient == o]
        for start in range(0, len(k), 16384):
            part = k[start : start + 16384]
            within = kernel.exact_ssd(samples[ia[part]], samples[ib[part]], o) <= limit
            keep_pair.append(part[within])
            keep_orient.append(np.full(int(within.sum()), o, dtype=np.int64))
    return np.concatenate(keep_pair), np.concatenate(keep_orient)
