"""A search's tone pass: the pairs whose tone matches (``signals``), beside the pixel pass.

Flows in: the search's scope, which images are new and which are in reference folders, its
buckets' rules (same_dim, in_folder), orientations and the tone threshold. Each image's tone keys
(block sums of its tone) are computed once from its stored tensor and kept in ``tone_keys``: no
file is decoded again. Flows out: ``ToneFound``, the matching pairs lower id first, with their
tone score and the pixel SSD in the orientation tone chose (the pairs table's ``mse``).

The plan is the classic one (``plan._plan_part``: new chunks against all, reference folders only
against the rest); the block-sum bound of every pair of a chunk pair is one float32 matrix
product (``kernel.candidates``), and only the pairs it leaves are read and scored exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.queries import load_tensors
from imgindex.compare import kernel, signals
from imgindex.compare.plan import Scope, _buckets, _plan_part

if TYPE_CHECKING:
    from sqlite_utils import Database

RECIPE = "tone-1"  # how tone_keys rows were made: keys of another recipe are made again, never mixed
CHUNK = 2048


@dataclass(frozen=True)
class ToneFound:
    image_a: np.ndarray
    image_b: np.ndarray
    ssd: np.ndarray
    orient: np.ndarray
    score: np.ndarray

    @staticmethod
    def empty() -> ToneFound:
        e = np.empty(0, np.int64)
        return ToneFound(e, e, e, e, np.empty(0))

    def __len__(self) -> int:
        return len(self.image_a)

    def take(self, keep: np.ndarray) -> ToneFound:
        return ToneFound(self.image_a[keep], self.image_b[keep], self.ssd[keep], self.orient[keep], self.score[keep])


def ensure_keys(db: Database, ids: np.ndarray, px_size: int, chunk: int = 2048) -> None:
    """Make the tone keys of ``ids`` that have none of this recipe yet, from their tensors."""
    have = np.fromiter((r[0] for r in db.execute("SELECT image_id FROM tone_keys WHERE recipe = ?", [RECIPE])),
                       dtype=np.int64)
    missing = np.setdiff1d(ids, have)
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        t = signals.tones(load_tensors(db, part, px_size))
        coarse = signals.coarse(t, px_size)
        rows = [(int(i), RECIPE, c.tobytes() if has else b"") for i, c, has in zip(part, coarse, t.has_tone)]
        with db.atomic():
            db.conn.executemany("INSERT OR REPLACE INTO tone_keys (image_id, recipe, coarse) VALUES (?, ?, ?)", rows)


def load_keys(db: Database, ids: np.ndarray, px_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(coarse (k, g, g, 1) float64, has_tone (k,)) of ``ids``, in that order."""
    g = len(kernel.grid_edges(px_size)) - 1
    rows = dict(db.execute("SELECT image_id, coarse FROM tone_keys WHERE image_id IN (SELECT value FROM json_each(?))",
                           [json.dumps(np.asarray(ids).tolist())]))
    coarse = np.zeros((len(ids), g, g, 1))
    has = np.zeros(len(ids), dtype=bool)
    for k, i in enumerate(np.asarray(ids).tolist()):
        blob = rows[i]
        if blob:
            coarse[k] = np.frombuffer(blob, dtype=np.float64).reshape(g, g, 1)
            has[k] = True
    return coarse, has


def search(db: Database, scope: Scope, is_new: np.ndarray, is_reference: np.ndarray, px_size: int, threshold: float,
           orientations: tuple[int, ...], *, same_dim: bool, in_folder: bool) -> ToneFound:
    """Every pair with a new image (and at most one reference image) whose tone score is within
    ``threshold``, in the best of ``orientations``."""
    found = []
    buckets = [b for b in _buckets(scope, same_dim, in_folder) if is_new[b].any() and not is_reference[b].all()]
    for part in buckets:
        ids = scope.ids[part]
        ensure_keys(db, ids, px_size)
        coarse, has = load_keys(db, ids, px_size)
        ids, coarse, new, ref = ids[has], coarse[has], is_new[part][has], is_reference[part][has]
        at = {int(i): k for k, i in enumerate(ids.tolist())}
        for task in _plan_part(ids, new, ref, CHUNK):
            found.append(_task(db, px_size, task, at, coarse, threshold, orientations))
    if not found:
        return ToneFound.empty()
    return ToneFound(*(np.concatenate([getattr(f, k) for f in found]) for k in ToneFound.__dataclass_fields__))


def _task(db, px_size, task, at, coarse, threshold, orientations) -> ToneFound:
    """One chunk pair: the block-sum bound of all its pairs, then the exact score of those left."""
    same = task.ids_b is None
    ids_a = np.array(task.ids_a, dtype=np.int64)
    ids_b = ids_a if same else np.array(task.ids_b, dtype=np.int64)
    ca = coarse[[at[i] for i in task.ids_a]]
    cb = ca if same else coarse[[at[i] for i in task.ids_b]]
    cand = kernel.candidates(ca, cb, np.zeros((1, 1, 1, 1)), signals.bound_limit(threshold), orientations, upper=same)
    if len(cand.rows) == 0:
        return ToneFound.empty()
    a, b, o = ids_a[cand.rows], ids_b[cand.cols], cand.orient
    flip = a > b  # seen from the lower id, as stored: the orientation from that side is the inverse
    a, b = np.where(flip, b, a), np.where(flip, a, b)
    o = np.where(flip, np.asarray(kernel.INVERSE)[o], o)
    return score_pairs(db, px_size, a, b, o, threshold)


def score_pairs(db, px_size: int, a: np.ndarray, b: np.ndarray, o: np.ndarray, threshold: float) -> ToneFound:
    """Exact tone scores of (a, b, orientation) candidates (a < b), each pair's best within the threshold."""
    need = np.union1d(a, b)
    tensors = load_tensors(db, need, px_size)
    t = signals.tones(tensors)
    ia, ib = np.searchsorted(need, a), np.searchsorted(need, b)
    score = np.empty(len(a))
    for orientation in np.unique(o).tolist():
        sel = o == orientation
        score[sel] = signals.scores(t, ia[sel], ib[sel], orientation)
    m = signals.best(ia, ib, o, score, threshold)
    ssd = np.empty(len(m.rows), dtype=np.int64)
    for orientation in np.unique(m.orient).tolist():
        sel = m.orient == orientation
        ssd[sel] = kernel.exact_ssd(tensors[m.rows[sel]], tensors[m.cols[sel]], orientation)
    return ToneFound(need[m.rows], need[m.cols], ssd, m.orient, m.score)
