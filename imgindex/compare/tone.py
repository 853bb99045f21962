"""A search's tone pass: the pairs whose tone matches (``signals``), beside the pixel pass.

Flows in: the search's scope, which images are new and which are in reference folders, its
buckets' rules (same_dim, in_folder), orientations and the tone threshold. Each image's tone keys
(block sums of its tone) are computed once from its stored tensor and kept in ``tone_keys``: no
file is decoded again. Flows out: ``ToneFound``, the matching pairs lower id first, with their
tone score and the pixel SSD in the orientation tone chose (the pairs table's ``mse``).

A range search, as the chunked pixel search (``space``): each image a point (the orbit features
of its tone's block sums, scaled by the box ``signals.box``) in a grid of cells, new images
against their neighbouring cells (and reference folders only against the rest); then the box in
each orientation; only the pairs left are read and scored exactly. Every bound is a lower bound of the tone score's
(``signals``), so no pair within the threshold is lost. A few new images in a large index find
their neighbours in the kept point index instead (``tone_points``), then the same checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.queries import load_tensors, store_signal_keys
from imgindex.compare import kernel, keys, signals, space, tone_points
from imgindex.compare.plan import Scope, _buckets, bucket_keys
from imgindex.compare.tone_points import BOX_DIMS, BOX_REACH

if TYPE_CHECKING:
    from sqlite_utils import Database

EMPTY = np.empty(0, np.int64)


@dataclass(frozen=True)
class ToneFound:
    """Pairs a signal besides pixels matched, lower id first: ``ssd`` is their pixel SSD in the
    orientation recorded, ``score`` the signal's."""

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


def ensure_keys(db: Database, ids: np.ndarray, px_size: int, chunk: int = 2048, *, rank: bool = False) -> None:
    """Make the tone (or rank) keys of ``ids`` that have none of this recipe yet, from their tensors."""
    table, recipe = keys.signal_table(rank)
    have = np.fromiter((r[0] for r in db.execute(f"SELECT image_id FROM {table} WHERE recipe = ? ORDER BY image_id",
                                                 [recipe])), dtype=np.int64)
    missing = space.missing_from(np.unique(ids), have)
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        blobs = keys.tone_blobs(load_tensors(db, part, px_size), px_size, rank=rank)
        with db.atomic():
            store_signal_keys(db, table, recipe, part.tolist(), blobs)
            tone_points.add(db, rank, px_size, part.tolist(), blobs)


def load_keys(db: Database, ids: np.ndarray, px_size: int, *, rank: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(coarse (k, g, g, 1) float32, has_tone (k,)) of ``ids``, in that order."""
    g = len(kernel.grid_edges(px_size, signals.LOCAL_GRID)) - 1
    rows = dict(db.execute(f"SELECT image_id, coarse FROM {keys.signal_table(rank)[0]} WHERE image_id IN"
                           " (SELECT value FROM json_each(?))", [json.dumps(np.asarray(ids).tolist())]))
    blobs = [rows[i] for i in np.asarray(ids).tolist()]
    has = np.fromiter((len(b) > 0 for b in blobs), dtype=bool, count=len(blobs))
    coarse = np.zeros((len(ids), g, g, 1), dtype=np.float32)
    if has.any():  # one buffer for all of them: a million small frombuffer calls took seconds
        coarse[has] = np.frombuffer(b"".join(b for b in blobs if b), dtype=np.float32).reshape(-1, g, g, 1)
    return coarse, has


def search(db: Database, scope: Scope, is_new: np.ndarray, is_reference: np.ndarray, px_size: int, threshold: float,
           orientations: tuple[int, ...], *, same_dim: bool, in_folder: bool, rank: bool = False,
           make_keys: bool = True) -> ToneFound:
    """Every pair with a new image (and at most one reference image) whose tone score (``rank``:
    the tone of their luminances' ranks) is within ``threshold``, in the best of ``orientations``.
    ``db``: the index, or a read-only connection when ``make_keys`` is off (the keys made already)."""
    found = [ToneFound.empty()]
    buckets = [b for b in _buckets(scope, same_dim, in_folder) if is_new[b].any() and not is_reference[b].all()]
    if buckets and make_keys:
        ensure_keys(db, scope.ids[np.concatenate(buckets)], px_size, rank=rank)
        if few_new(is_new):
            tone_points.ensure(db, rank, px_size, threshold)
    if buckets and few_new(is_new) and tone_points.space_of(db, rank, px_size) is not None:
        inside = np.concatenate(buckets)
        pairs = kept_pairs(db, scope, inside[is_new[inside]], is_reference, px_size, threshold, same_dim=same_dim,
                           in_folder=in_folder, rank=rank)
        return _scored(db, pairs, threshold, orientations, px_size, rank)
    for part in buckets:
        ids = scope.ids[part]
        coarse, has = load_keys(db, ids, px_size, rank=rank)
        ids, coarse, new, ref = ids[has], coarse[has], is_new[part][has], is_reference[part][has]
        if len(ids) < 2:  # no two images of the bucket have a tone: no pair to find
            continue
        pa, pb = _near(coarse, new, ref, threshold, px_size)
        cand_a, cand_b, cand_o = oriented(coarse, pa, pb, threshold, orientations, px_size)
        found.append(_exact(db, px_size, *lower_first(ids[cand_a], ids[cand_b], cand_o), threshold, rank))
    return ToneFound(*(np.concatenate([getattr(f, k) for f in found]) for k in ToneFound.__dataclass_fields__))


def few_new(is_new: np.ndarray) -> bool:
    """Few enough new images to look up in the kept point index (one query each) rather than search
    the whole index: a few per cent of it (at 100,000 windows, 500 new images cost what a search
    of all does), and at most FEW_NEW."""
    new = int(is_new.sum())
    return 0 < new <= min(FEW_NEW, len(is_new) // FEW_SHARE)


FEW_NEW = 5_000
FEW_SHARE = 200


def kept_pairs(db, scope: Scope, new: np.ndarray, is_reference: np.ndarray, px_size: int, threshold: float, *,
               same_dim: bool, in_folder: bool, rank: bool) -> np.ndarray:
    """(k, 2) ids (lower first) of the pairs with a new image (``new``: their scope positions, in
    buckets) that the kept point index leaves, as a search of the buckets would pair them: both in
    scope, in one bucket, not both reference images."""
    new_ids = scope.ids[new]
    coarse, has = load_keys(db, new_ids, px_size, rank=rank)
    pairs = tone_points.candidates(db, rank, px_size, new_ids[has], coarse[has], threshold)
    at = np.searchsorted(scope.ids, pairs)
    inside = np.all(scope.ids[np.minimum(at, len(scope.ids) - 1)] == pairs, axis=1)
    a, b = at[inside, 0], at[inside, 1]
    key = bucket_keys(scope, same_dim, in_folder)
    keep = ~(is_reference[a] & is_reference[b]) & np.all(key[a] == key[b], axis=1)
    return pairs[inside][keep]


def _scored(db, pairs: np.ndarray, threshold: float, orientations, px_size: int, rank: bool) -> ToneFound:
    """The kept index's pairs (ids, ``kept_pairs``) through the checks a bucket's pass makes after
    its grid: each local block's box in some orientation, then the exact score."""
    need = np.unique(pairs)
    coarse, _ = load_keys(db, need, px_size, rank=rank)
    cand_a, cand_b, cand_o = oriented(coarse, np.searchsorted(need, pairs[:, 0]), np.searchsorted(need, pairs[:, 1]),
                                      threshold, orientations, px_size)
    return _exact(db, px_size, *lower_first(need[cand_a], need[cand_b], cand_o), threshold, rank)


def _exact(db, px_size: int, a: np.ndarray, b: np.ndarray, o: np.ndarray, threshold: float, rank: bool) -> ToneFound:
    """``score_pairs`` of the candidates, EXACT_BATCH at a time."""
    found = [ToneFound.empty()] + [
        score_pairs(db, px_size, a[k : k + EXACT_BATCH], b[k : k + EXACT_BATCH], o[k : k + EXACT_BATCH], threshold,
                    rank=rank) for k in range(0, len(a), EXACT_BATCH)]
    return ToneFound(*(np.concatenate([getattr(f, k) for f in found]) for k in ToneFound.__dataclass_fields__))


EXACT_BATCH = 4096  # candidate pairs scored at once (their tensors in memory)
JOINS = (("new", "new"), ("new", "old"), ("new", "ref"), ("refnew", "old"))  # as plan._plan_part's: never ref-ref


def _near(coarse: np.ndarray, new: np.ndarray, ref: np.ndarray, threshold: float,
          px_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (a, b) of the pairs to compare that the box bound leaves (``Points``)."""
    points = Points.of(coarse, threshold, px_size)
    sets = {"new": ~ref & new, "old": ~ref & ~new, "ref": ref, "refnew": ref & new}
    found = [points.pairs(np.flatnonzero(sets[left]), np.flatnonzero(sets[right]), same=left == right)
             for left, right in JOINS]
    return np.concatenate([EMPTY] + [a for a, _ in found]), np.concatenate([EMPTY] + [b for _, b in found])


@dataclass(frozen=True)
class Points:
    """Each image a point: its tone's scaled orbit features (``signals.box``: the same in every
    orientation), within 1 of the other's on every axis when a pair can be within the threshold;
    a grid of unit cells over the axes of most spread finds them."""

    space: space.Space
    keys: np.ndarray
    close: np.ndarray  # float32 coordinates
    columns: np.ndarray  # the coordinates on the axes of ``cascade``, one contiguous row per axis

    @staticmethod
    def of(coarse: np.ndarray, threshold: float, px_size: int) -> Points:
        """Points of the blocks merged two by two (``signals.merged``): as many values as the
        pixel search's coarse grid, whose orbits spread the points best over a grid of cells; the
        local blocks' own box is checked after (``oriented``)."""
        features = tone_points.features(coarse, threshold, px_size)  # float32 keys: within BOX_REACH's room
        sp = _box_space(features)
        projected = space.project(sp, features)
        close = projected.astype(np.float32)
        columns = np.ascontiguousarray(close[:, cascade(close.shape[1])].T)
        return Points(sp, space.cell_keys(sp, projected), close, columns)

    def pairs(self, la: np.ndarray, ra: np.ndarray, *, same: bool) -> tuple[np.ndarray, np.ndarray]:
        """Positions (a in ``la``, b in ``ra``) of the pairs in neighbouring cells within the box
        (``same``: la is ra, each pair once)."""
        if not len(la) or not len(ra):
            return EMPTY, EMPTY
        lg, rg = space.make_grid(self.keys[la]), space.make_grid(self.keys[ra])
        found_a, found_b = [EMPTY], [EMPTY]
        close, axes = self.close, cascade(self.close.shape[1])
        rest = np.setdiff1d(np.arange(close.shape[1]), axes)
        for i, j in space.pair_blocks(lg, 0, len(la), rg, space.neighbour_offsets(self.space, half=same), same=same):
            pa, pb = la[lg.order[i]], ra[rg.order[j]]
            for column in self.columns:  # an axis at a time, each from a small array: most pairs leave early
                keep = np.abs(column[pa] - column[pb]) <= BOX_REACH
                pa, pb = pa[keep], pb[keep]
            if len(rest):  # (tiny tensors have fewer axes than the cascade)
                keep = np.abs(close[pa][:, rest] - close[pb][:, rest]).max(axis=1) <= BOX_REACH
                pa, pb = pa[keep], pb[keep]
            found_a.append(pa)
            found_b.append(pb)
        return np.concatenate(found_a), np.concatenate(found_b)


def cascade(dims: int) -> list[int]:
    """The axes a pair's box is checked on one at a time, in this order: the three after the grid's
    first (of most spread, and the cells say nothing of them: each rules out about half the pairs
    left), then the grid's. At 100,000 real-photo windows, 24 million pairs from neighbouring
    cells: 1.6 s with ten axes at once, 0.46 s so."""
    return [a for a in (*range(BOX_DIMS, BOX_DIMS + 3), *range(BOX_DIMS)) if a < dims]


def _box_space(features: np.ndarray) -> space.Space:
    """Unit cells over the BOX_DIMS feature axes of most spread (no rotation: the box bound holds
    axis by axis), the others after them."""
    spread = features[:: max(1, len(features) // 50_000)].std(axis=0)
    order = np.argsort(-spread, kind="stable")
    axes = np.eye(features.shape[1])[:, order]
    top = features[:, order[:BOX_DIMS]]
    side = BOX_REACH * (1 + 1e-6)
    origin = top.min(axis=0, initial=0) - side
    shape = np.floor((top.max(axis=0, initial=0) - origin) / side).astype(np.int64) + 2
    return space.Space(np.zeros(features.shape[1]), axes, side, origin, shape, side)


def oriented(coarse: np.ndarray, pa: np.ndarray, pb: np.ndarray, threshold: float, orientations,
             px_size: int, *, batch: int = 65_536):
    """The (a, b, orientation) of those pairs whose coarse values lie within the box of each other's
    in that orientation (``signals.box``), block by block."""
    scaled = (coarse / signals.box(threshold, px_size)[None, :, :, None]).astype(np.float32)
    found_a, found_b, found_o = [EMPTY], [EMPTY], [EMPTY]
    for start in range(0, len(pa), batch):
        a, b = pa[start : start + batch], pb[start : start + batch]
        for o in orientations:
            far = np.abs(scaled[a] - kernel.orient(scaled[b], o)).reshape(len(a), -1).max(axis=1)
            keep = far <= BOX_REACH
            found_a.append(a[keep])
            found_b.append(b[keep])
            found_o.append(np.full(int(keep.sum()), o, dtype=np.int64))
    return np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_o)


def score_pairs(db, px_size: int, a: np.ndarray, b: np.ndarray, o: np.ndarray, threshold: float, *,
                rank: bool = False) -> ToneFound:
    """Exact tone (or rank) scores of (a, b, orientation) candidates (a < b), each pair's best within
    the threshold."""
    need = np.union1d(a, b)
    tensors = load_tensors(db, need, px_size)
    ia, ib = np.searchsorted(need, a), np.searchsorted(need, b)
    score = signals.scores_in(signals.tones(tensors, rank=rank), ia, ib, o, limit=threshold)
    m = signals.best(ia, ib, o, score, threshold)
    return ToneFound(need[m.rows], need[m.cols], ssd_in(tensors[m.rows], tensors[m.cols], m.orient), m.orient,
                     m.score)


def lower_first(a: np.ndarray, b: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a, b, orientation from a to b) seen from the lower id, as stored: where b is lower,
    the two swap and the orientation is the inverse."""
    flip = a > b
    return np.where(flip, b, a), np.where(flip, a, b), np.where(flip, np.asarray(kernel.INVERSE)[o], o)


def ssd_in(a: np.ndarray, b: np.ndarray, orient: np.ndarray) -> np.ndarray:
    """The pixel SSD of tensors a[k] and b[k] in orientation ``orient[k]`` (the pairs table's MSE)."""
    out = np.empty(len(a), dtype=np.int64)
    for orientation in np.unique(orient).tolist():
        sel = orient == orientation
        out[sel] = kernel.exact_ssd(a[sel], b[sel], orientation)
    return out
