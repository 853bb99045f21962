"""The point index: every image's orbit-feature point (``space``) on fixed principal axes, its first
POINT_DIMS coordinates kept in SQLite's R*Tree (``search_points``), so an incremental search of a
few new images finds every indexed image within reach by a box query each, reading no other row.

Flows in: orbit features (``search_keys.orbits``). Flows out: candidate pairs of image ids.

Why no matching pair is lost: any orthonormal axes keep distances, so each coordinate of two
points differs by at most their distance, which is at most sqrt(SSD) in every orientation
(``space``). Boxes are widened by the float32 rounding of the kept features and of the
projection, and the R*Tree rounds the boxes it keeps outwards. The axes are fitted once (on the
index as it first was) and kept: later images may spread differently, which costs candidates,
never pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.runs import now
from imgindex.compare import kernel, nearby, space

if TYPE_CHECKING:
    from sqlite_utils import Database

POINT_DIMS = 5  # the most an R*Tree holds
FIT_SAMPLE = 50_000
_COLUMNS = ", ".join(f"x{k}_lo, x{k}_hi" for k in range(POINT_DIMS))
_INSERT = f"INSERT OR REPLACE INTO search_points (image_id, {_COLUMNS}) VALUES ({', '.join('?' * (1 + 2 * POINT_DIMS))})"
_QUERY = "SELECT image_id FROM search_points WHERE " + " AND ".join(
    f"x{k}_hi >= ? AND x{k}_lo <= ?" for k in range(POINT_DIMS))


def axes_of(db: Database, px_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(center, axes (m, POINT_DIMS)) of the kept space, or None before the first is fitted."""
    row = db.execute("SELECT center, axes FROM search_space WHERE px_size = ?", [px_size]).fetchone()
    if row is None:
        return None
    center = np.frombuffer(row[0], dtype=np.float64)
    return center, np.frombuffer(row[1], dtype=np.float64).reshape(len(center), -1)


def coordinates(center: np.ndarray, axes: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(k, POINT_DIMS) float64 coordinates of float32 features on the kept axes."""
    return (features.astype(np.float64) - center) @ axes


def add(db: Database, px_size: int, ids: np.ndarray, features: np.ndarray) -> None:
    """Keep the points of ``ids`` (their orbit features given); a no-op before the space exists."""
    kept = axes_of(db, px_size)
    if kept is None or len(ids) == 0:
        return
    _insert(db, ids, coordinates(*kept, features))


def _insert(db: Database, ids: np.ndarray, points: np.ndarray, batch: int = 100_000) -> None:
    """Rows in the order of a coarse grid over the first two axes: an R*Tree fills 20% faster so."""
    spread = float(points[:, 0].max() - points[:, 0].min()) if len(points) else 0.0
    cell = np.floor(points[:, :2] / max(spread / 64, 1e-9))
    order = np.lexsort((cell[:, 1], cell[:, 0]))
    for start in range(0, len(order), batch):
        part = order[start : start + batch]
        rows = [(i, *[v for x in p for v in (x, x)]) for i, p in zip(ids[part].tolist(), points[part].tolist())]
        with db.atomic():
            db.conn.executemany(_INSERT, rows)


def ensure(db: Database, px_size: int) -> None:
    """Fit and keep the space, and every keyed image's point, the first time they are needed (about
    25 s at a million images, once); afterwards new keys add their points as they are made."""
    if axes_of(db, px_size) is not None:
        return
    ids = np.fromiter((r[0] for r in db.execute("SELECT image_id FROM search_keys WHERE sample IS NOT NULL"
                                                " ORDER BY image_id")), dtype=np.int64)
    if len(ids) < 2:  # nothing to fit yet: the first search with keys does it
        return
    features = nearby.load_orbits(db, ids, len(kernel.grid_edges(px_size)) - 1)
    fitted = space.fit(features[:: max(1, len(features) // FIT_SAMPLE)], 1.0)
    center, axes = fitted.center, fitted.axes[:, :POINT_DIMS]
    with db.atomic():
        db.execute("DELETE FROM search_points")
        db.execute("INSERT INTO search_space (px_size, center, axes, fitted_at) VALUES (?, ?, ?, ?)",
                   [px_size, center.tobytes(), np.ascontiguousarray(axes).tobytes(), now()])
    _insert(db, ids, coordinates(center, axes, features))


def half_width(limit: float, px_size: int) -> float:
    """How far, along any axis, a point within reach of the SSD limit can be, as kept: the radius,
    widened for float32 features of norm at most that of a white tensor and the float64 projection."""
    bound = 255.0 * np.sqrt(px_size * px_size * 3)
    return space.stored_radius(float(np.sqrt(limit)), bound) * (1 + 1e-9) + 1e-6 * bound


def candidates(db: Database, px_size: int, ids: np.ndarray, features: np.ndarray, limit: float) -> np.ndarray:
    """(k, 2) distinct pairs (lower id first) of each of ``ids`` with every kept point within reach,
    itself excepted; the others may be any indexed image (the caller keeps those in scope)."""
    center, axes = axes_of(db, px_size)
    h = half_width(limit, px_size)
    found = []
    for image_id, p in zip(ids.tolist(), coordinates(center, axes, features).tolist()):
        box = [v for x in p for v in (x - h, x + h)]
        hits = np.fromiter((r[0] for r in db.execute(_QUERY, box)), dtype=np.int64)
        hits = hits[hits != image_id]
        found.append(np.stack([np.minimum(hits, image_id), np.maximum(hits, image_id)], axis=1))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
