"""The tone and rank point index: every image's tone point (``tone.Points``'s features) on a fixed
grid, kept in SQLite by cell (``signal_points``, one set per signal recipe). An incremental search of
a few new images finds every indexed image within their box in a few ranges of cells each, and
reads no other row: not the million keys a search of the whole index reads.

Flows in: tone or rank keys (the ``coarse`` blobs of ``tone_keys``, ``rank_keys``). Flows out:
candidate pairs of image ids, which ``tone.search`` checks and scores as any other.

Why no matching pair is lost: a point is its features (``features``) scaled by the box of the
threshold the index was fitted at; at a threshold t, two images within it lie within
``reach(t)`` of each other on every axis (``tone.Points``' bound, times the ratio of the two
boxes, with room for float32). Cells are at least that wide at the fitted threshold, so such a
pair lies at most ``steps`` cells apart along each grid axis (cells past the grid's edge are
clamped to it, which brings points closer, never further). The grid's axes (those of most spread)
and origin are fitted once, on the index as it first was, and kept: images made later may spread
differently, which costs candidates, never pairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.connect import write_transaction
from imgindex.db.runs import now
from imgindex.compare import kernel, keys, signals, space

if TYPE_CHECKING:
    from sqlite_utils import Database

BOX_DIMS = 5  # grid axes: the features of most spread (100k windows: 4 axes 9.0 s, 5 4.4 s, 6 4.6 s, 7 5.5 s)
BOX_REACH = 1 + 1e-4  # the box's side, with room for float32 keys and points (values of size < 100)
CELL_BITS = 12  # cells along each grid axis: 4,096 (a key of 60 bits)
SIDE = BOX_REACH + 1e-3  # a cell, at the fitted threshold: wider than the reach there (one cell each way)
FIT_SAMPLE = 50_000


def features(coarse: np.ndarray, threshold: float, px_size: int) -> np.ndarray:
    """(k, m) float64: the orbit features (``space.orbit_features``) of the blocks merged two by two
    (``signals.merged``), scaled by their box at ``threshold``: within 1 of each other on every
    axis, in every orientation, when a pair can be within it."""
    merged, box = signals.merged(coarse, threshold, px_size)
    return space.orbit_features(merged / box[None, :, :, None])


def reach(threshold: float, fitted: float, px_size: int) -> float:
    """How far apart, on every axis of a point fitted at ``fitted``, two images within ``threshold`` lie."""
    g = len(kernel.grid_edges(px_size, signals.LOCAL_GRID)) - 1
    zero = np.zeros((1, g, g, 1))
    ratio = float(np.max(signals.merged(zero, threshold, px_size)[1] / signals.merged(zero, fitted, px_size)[1]))
    return BOX_REACH * ratio + 1e-4


@dataclass(frozen=True)
class KeptSpace:
    """The fitted grid of one signal recipe: ``order`` of the feature axes (most spread first),
    ``origin`` of the first BOX_DIMS of them, at ``threshold``."""

    recipe: str
    threshold: float
    order: np.ndarray
    origin: np.ndarray

    def points(self, coarse: np.ndarray, px_size: int) -> np.ndarray:
        """(k, m) float32 points of (k, g, g, 1) tone keys."""
        return features(coarse, self.threshold, px_size)[:, self.order].astype(np.float32)

    def cells(self, points: np.ndarray) -> np.ndarray:
        cells = np.floor((points[:, :BOX_DIMS].astype(np.float64) - self.origin) / SIDE)
        return np.clip(cells, 0, (1 << CELL_BITS) - 1).astype(np.int64)


def space_of(db, rank: bool, px_size: int) -> KeptSpace | None:
    """The kept grid of the signal's recipe, or None before one is fitted."""
    recipe = keys.signal_table(rank)[1]
    row = db.execute("SELECT threshold, axes, origin FROM signal_space WHERE recipe = ? AND px_size = ?",
                     [recipe, px_size]).fetchone()
    if row is None:
        return None
    return KeptSpace(recipe, float(row[0]), np.frombuffer(row[1], dtype=np.int64), np.frombuffer(row[2]))


def ensure(db: Database, rank: bool, px_size: int, threshold: float) -> None:
    """Fit and keep the grid of the signal, and every keyed image's point, the first time it is
    needed; afterwards keys add their points as they are made (``add``).

    Fitted outside the write lock, kept under it in one transaction: no other process sees the
    grid before every point is in, and images given keys meanwhile by another process (which saw
    no grid, so kept no point) get theirs too."""
    if space_of(db, rank, px_size) is not None:
        return
    ids, coarse = _keyed(db, rank, px_size)
    if len(ids) < 2:  # nothing to fit yet
        return
    found = features(coarse, threshold, px_size)
    del coarse
    order = np.argsort(-found[:: max(1, len(found) // FIT_SAMPLE)].std(axis=0), kind="stable")
    origin = found[:, order[:BOX_DIMS]].min(axis=0) - SIDE
    recipe = keys.signal_table(rank)[1]
    with write_transaction(db):
        if space_of(db, rank, px_size) is not None:
            return  # another process kept one meanwhile
        db.execute("DELETE FROM signal_points WHERE recipe = ?", [recipe])
        db.execute("INSERT INTO signal_space (recipe, px_size, threshold, axes, origin, fitted_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)", [recipe, px_size, threshold, order.astype(np.int64).tobytes(),
                                                  origin.tobytes(), now()])
        kept = space_of(db, rank, px_size)
        _insert(db, kept, ids, found[:, order].astype(np.float32))
        since = space.missing_from(_keyed(db, rank, px_size, ids_only=True)[0], ids)
        if len(since):
            later, coarse = _keyed(db, rank, px_size, only=since)
            _insert(db, kept, later, kept.points(coarse, px_size))


def add(db: Database, rank: bool, px_size: int, ids, blobs) -> None:
    """Keep the points of ``ids`` from their key blobs (b"": no tone, None: no keys; no point for
    either); a no-op before the grid exists."""
    kept = space_of(db, rank, px_size)
    pairs = [(i, b) for i, b in zip(ids, blobs) if b]
    if kept is None or not pairs:
        return
    g = len(kernel.grid_edges(px_size, signals.LOCAL_GRID)) - 1
    coarse = np.frombuffer(b"".join(b for _, b in pairs), dtype=np.float32).reshape(-1, g, g, 1)
    _insert(db, kept, np.array([i for i, _ in pairs], dtype=np.int64), kept.points(coarse, px_size))


def _insert(db: Database, kept: KeptSpace, ids: np.ndarray, points: np.ndarray, batch: int = 100_000) -> None:
    """Rows in key order (a B-tree fills fastest so)."""
    cells = space.packed_keys(kept.cells(points), CELL_BITS)
    order = np.argsort(cells, kind="stable")
    for start in range(0, len(order), batch):
        part = order[start : start + batch]
        db.conn.executemany("INSERT OR REPLACE INTO signal_points (recipe, cell, image_id, coords) VALUES (?, ?, ?, ?)",
                            zip([kept.recipe] * len(part), cells[part].tolist(), ids[part].tolist(),
                                (p.tobytes() for p in points[part])))


def _keyed(db, rank: bool, px_size: int, *, ids_only: bool = False,
           only: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(ids ascending, (k, g, g, 1) float32 keys) of every image with a tone of this recipe (or of
    those of ``only``); the keys None with ``ids_only``."""
    table, recipe = keys.signal_table(rank)
    among = "" if only is None else " AND image_id IN (SELECT value FROM json_each(?))"
    rows = db.execute(f"SELECT image_id{'' if ids_only else ', coarse'} FROM {table} WHERE recipe = ?"
                      f" AND length(coarse) > 0{among} ORDER BY image_id",
                      [recipe] + ([] if only is None else [json.dumps(only.tolist())])).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    if ids_only:
        return ids, None
    g = len(kernel.grid_edges(px_size, signals.LOCAL_GRID)) - 1
    return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, g, g, 1)


def candidates(db, rank: bool, px_size: int, ids: np.ndarray, coarse: np.ndarray, threshold: float) -> np.ndarray:
    """(k, 2) distinct pairs (lower id first) of each of ``ids`` (whose keys are ``coarse``, each
    with a tone) with every kept point within reach, itself excepted; the others may be any indexed
    image (the caller keeps those in scope)."""
    kept = space_of(db, rank, px_size)
    far = reach(threshold, kept.threshold, px_size)
    steps = int(np.ceil(far / SIDE))
    points = kept.points(coarse, px_size)
    found = [np.zeros((0, 2), dtype=np.int64)]
    for image_id, cell, q in zip(ids.tolist(), kept.cells(points), points):
        rows = db.execute(
            # CROSS JOIN: the ranges outside, each a search of the key (else SQLite reads all the recipe's rows)
            "SELECT p.image_id, p.coords FROM json_each(?) r CROSS JOIN signal_points p ON p.recipe = ?"
            " AND p.cell BETWEEN json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]')",
            [json.dumps(space.packed_ranges(cell, steps, CELL_BITS)), kept.recipe]).fetchall()
        hits = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        near = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        hits = hits[(np.abs(near - q).max(axis=1, initial=0) <= far) & (hits != image_id)]
        found.append(np.stack([np.minimum(hits, image_id), np.maximum(hits, image_id)], axis=1))
    pairs = np.concatenate(found)
    return np.unique(pairs, axis=0) if len(pairs) else pairs
