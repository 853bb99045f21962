"""The point index: every image's orbit-feature point (``space``) on fixed principal axes, kept in
SQLite by the cell of a grid over its first CELL_DIMS coordinates, with its first KEPT_DIMS
coordinates beside it (``search_points``). An incremental search of a few new images finds every
indexed image within reach in a few ranges of cells each, reading no other row.

Flows in: orbit features (``search_keys.orbits``). Flows out: candidate pairs of image ids.

Why no matching pair is lost: any orthonormal axes keep distances, so each coordinate of two
points differs by at most their distance, which is at most sqrt(SSD) in every orientation
(``space``): two points within reach r lie at most ceil(r / side) cells apart along each grid
axis (cells past the grid's edge are clamped to it, which brings points closer, never further),
and their distance over the kept coordinates is at most r too. Both checks are widened by the
float32 rounding of the kept features, of the projection and of the kept coordinates. The axes
and the grid are fitted once (on the index as it first was) and kept: later images may spread
differently, or a search use another threshold, which costs candidates, never pairs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.connect import write_transaction
from imgindex.db.runs import now
from imgindex.compare import kernel, nearby, space
from imgindex.compare.settings import SIMILARITY_PRESETS

if TYPE_CHECKING:
    from sqlite_utils import Database

CELL_DIMS = 4  # grid axes: 3^4 neighbouring cells at the fitted threshold
KEPT_DIMS = space.CLOSE_DIMS  # coordinates kept beside the cell, to check a neighbour's point against
CELL_BITS = 15  # cells along each axis: 32,768, a key of 60 bits
FIT_SAMPLE = 50_000


class Space:
    """The kept axes and grid."""

    def __init__(self, center: np.ndarray, axes: np.ndarray, origin: np.ndarray, side: float):
        self.center, self.axes, self.origin, self.side = center, axes, origin, side

    def coordinates(self, features: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        """(k, KEPT_DIMS) float64 coordinates of float32 features, a chunk at a time."""
        out = np.empty((len(features), self.axes.shape[1]))
        for start in range(0, len(features), chunk):
            out[start : start + chunk] = (features[start : start + chunk].astype(np.float64) - self.center) @ self.axes
        return out

    def cells(self, points: np.ndarray) -> np.ndarray:
        """(k, CELL_DIMS) int64 cell of each point along each grid axis, clamped to the grid."""
        cells = np.floor((points[:, :CELL_DIMS] - self.origin) / self.side)
        return np.clip(cells, 0, (1 << CELL_BITS) - 1).astype(np.int64)


def key_of(cells: np.ndarray) -> np.ndarray:
    """One int64 per cell, the last axis varying fastest (so a run along it is a range of keys)."""
    return space.packed_keys(cells, CELL_BITS)


def space_of(db: Database, px_size: int) -> Space | None:
    """The kept space, or None before the first is fitted."""
    row = db.execute("SELECT center, axes, origin, side FROM search_space WHERE px_size = ?", [px_size]).fetchone()
    if row is None:
        return None
    center = np.frombuffer(row[0], dtype=np.float64)
    return Space(center, np.frombuffer(row[1], dtype=np.float64).reshape(len(center), -1),
                 np.frombuffer(row[2], dtype=np.float64), float(row[3]))


def add(db: Database, px_size: int, ids: np.ndarray, features: np.ndarray) -> None:
    """Keep the points of ``ids`` (their orbit features given); a no-op before the space exists."""
    kept = space_of(db, px_size)
    if kept is None or len(ids) == 0:
        return
    _insert(db, kept, np.asarray(ids, dtype=np.int64), kept.coordinates(features))


def _insert(db: Database, sp: Space, ids: np.ndarray, points: np.ndarray, batch: int = 100_000) -> None:
    """Rows in key order (a B-tree fills fastest so): a million in a few seconds."""
    keys = key_of(sp.cells(points))
    order = np.argsort(keys, kind="stable")
    for start in range(0, len(order), batch):
        part = order[start : start + batch]
        kept = points[part].astype(np.float32)
        with db.atomic():
            db.conn.executemany("INSERT OR REPLACE INTO search_points (cell, image_id, coords) VALUES (?, ?, ?)",
                                zip(keys[part].tolist(), ids[part].tolist(), (k.tobytes() for k in kept)))


def ensure(db: Database, px_size: int) -> None:
    """Fit and keep the space, and every keyed image's point, the first time they are needed (once);
    afterwards new keys add their points as they are made.

    Fitted outside the write lock, kept under it in one transaction: no other process sees the
    space before every point is in, and images given keys meanwhile by another process (which
    saw no space, so kept no point) get theirs too."""
    if space_of(db, px_size) is not None:
        return
    ids = _keyed(db)
    if len(ids) < 2:  # nothing to fit yet: the first search with keys does it
        return
    grid = len(kernel.grid_edges(px_size)) - 1
    features = nearby.load_orbits(db, ids, grid)
    fitted = space.fit(features[:: max(1, len(features) // FIT_SAMPLE)], 1.0)
    axes = fitted.axes[:, :KEPT_DIMS]
    if axes.shape[1] < CELL_DIMS:  # tiny tensors: zero axes fill the grid's dimensions (every point at 0)
        axes = np.hstack([axes, np.zeros((len(axes), CELL_DIMS - axes.shape[1]))])
    sp = Space(fitted.center, np.ascontiguousarray(axes), np.zeros(CELL_DIMS), 1.0)
    points = sp.coordinates(features)
    del features
    # cells as wide as the reach of 'similar' (so it looks at 3^4 of them), or wider if the spread
    # needs it to fit the grid; the origin one cell below the lowest point
    bound = 255.0 * np.sqrt(px_size * px_size * 3)
    low, high = points[:, :CELL_DIMS].min(axis=0), points[:, :CELL_DIMS].max(axis=0)
    side = max(_bounds(kernel.ssd_threshold(SIMILARITY_PRESETS["similar"], px_size * px_size * 3), px_size)[0],
               float((high - low).max()) / ((1 << CELL_BITS) - 4), 1e-6 * bound)
    sp = Space(sp.center, sp.axes, low - side, side)
    with write_transaction(db):
        if space_of(db, px_size) is not None:
            return  # another process kept one meanwhile
        db.execute("DELETE FROM search_points")
        db.execute("INSERT INTO search_space (px_size, center, axes, origin, side, fitted_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   [px_size, sp.center.tobytes(), sp.axes.tobytes(), sp.origin.tobytes(), side, now()])
        _insert(db, sp, ids, points)
        since = space.missing_from(_keyed(db), ids)
        if len(since):
            _insert(db, sp, since, sp.coordinates(nearby.load_orbits(db, since, grid)))


def _keyed(db: Database) -> np.ndarray:
    """Ids (ascending) of the images whose search keys are all there."""
    return np.fromiter((r[0] for r in db.execute("SELECT image_id FROM search_keys WHERE sample IS NOT NULL"
                                                 " ORDER BY image_id")), dtype=np.int64)


def _bounds(limit: float, px_size: int) -> tuple[float, float]:
    """(radius along any axis, squared distance over the kept coordinates) within which a point in
    reach of the SSD limit lies, as kept: the radius widened for float32 features of norm at most
    that of a white tensor, the float64 projection, and float32 coordinates."""
    bound = 255.0 * np.sqrt(px_size * px_size * 3)
    radius = space.stored_radius(float(np.sqrt(limit)), bound) * (1 + 1e-9) + 1e-6 * bound
    return radius, space.reach(radius, 2 * bound)  # coordinates: centred, so within twice the bound


def candidates(db, px_size: int, ids: np.ndarray, features: np.ndarray, limit: float) -> np.ndarray:
    """(k, 2) distinct pairs (lower id first) of each of ``ids`` with every kept point within reach,
    itself excepted; the others may be any indexed image (the caller keeps those in scope)."""
    sp = space_of(db, px_size)
    radius, reach2 = _bounds(limit, px_size)
    steps = int(np.ceil(radius / sp.side))
    points = sp.coordinates(features)
    found = []
    for image_id, cell, q in zip(ids.tolist(), sp.cells(points), points.astype(np.float32)):
        rows = db.execute(
            "SELECT p.image_id, p.coords FROM json_each(?) r JOIN search_points p"
            " ON p.cell BETWEEN json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]')",
            [json.dumps(space.packed_ranges(cell, steps, CELL_BITS))]).fetchall()
        hits = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        kept = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        hits = hits[space.close(kept, np.broadcast_to(q, kept.shape), reach2) & (hits != image_id)]
        found.append(np.stack([np.minimum(hits, image_id), np.maximum(hits, image_id)], axis=1))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
