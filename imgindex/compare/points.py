"""The point index: every image's orbit-feature point (``space``) on fixed principal axes, its first
POINT_DIMS coordinates kept in SQLite's R*Tree (``search_points``), so an incremental search of a
few new images finds every indexed image within reach by a box query each, reading no other row.

Flows in: orbit features (``search_keys.orbits``). Flows out: candidate pairs of image ids.

Why no matching pair is lost: any orthonormal axes keep distances, so each coordinate of two
points differs by at most their distance, which is at most sqrt(SSD) in every orientation
(``space``), and so does their distance over the first KEPT_DIMS coordinates (kept beside the
box, the second check). Both are widened by the float32 rounding of the kept features, of the
projection and of the kept coordinates, and the R*Tree rounds the boxes it keeps outwards. The axes are fitted once (on the
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
KEPT_DIMS = space.CLOSE_DIMS  # coordinates kept beside them, to check a box's points against
FIT_SAMPLE = 50_000
_COLUMNS = ", ".join(f"x{k}_lo, x{k}_hi" for k in range(POINT_DIMS))
_INSERT = (f"INSERT OR REPLACE INTO search_points (image_id, {_COLUMNS}, coords)"
           f" VALUES ({', '.join('?' * (2 + 2 * POINT_DIMS))})")
_QUERY = "SELECT image_id, coords FROM search_points WHERE " + " AND ".join(
    f"x{k}_hi >= ? AND x{k}_lo <= ?" for k in range(POINT_DIMS))


def axes_of(db: Database, px_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(center, axes (m, KEPT_DIMS)) of the kept space, or None before the first is fitted."""
    row = db.execute("SELECT center, axes FROM search_space WHERE px_size = ?", [px_size]).fetchone()
    if row is None:
        return None
    center = np.frombuffer(row[0], dtype=np.float64)
    return center, np.frombuffer(row[1], dtype=np.float64).reshape(len(center), -1)


def coordinates(center: np.ndarray, axes: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(k, KEPT_DIMS) float64 coordinates of float32 features on the kept axes."""
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
        kept = points[part].astype(np.float32)
        rows = [(i, *[v for x in p[:POINT_DIMS] for v in (x, x)], k.tobytes())
                for i, p, k in zip(ids[part].tolist(), points[part].tolist(), kept)]
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
    center, axes = fitted.center, fitted.axes[:, :KEPT_DIMS]
    if axes.shape[1] < POINT_DIMS:  # tiny tensors: zero axes fill the box's dimensions (every point at 0)
        axes = np.hstack([axes, np.zeros((len(axes), POINT_DIMS - axes.shape[1]))])
    with db.atomic():
        db.execute("DELETE FROM search_points")
        db.execute("INSERT INTO search_space (px_size, center, axes, fitted_at) VALUES (?, ?, ?, ?)",
                   [px_size, center.tobytes(), np.ascontiguousarray(axes).tobytes(), now()])
    _insert(db, ids, coordinates(center, axes, features))


def _bounds(limit: float, px_size: int) -> tuple[float, float]:
    """(half width of a box, squared distance over the kept coordinates) within which a point in
    reach of the SSD limit lies, as kept: the radius widened for float32 features of norm at most
    that of a white tensor, the float64 projection, and float32 coordinates."""
    bound = 255.0 * np.sqrt(px_size * px_size * 3)
    radius = space.stored_radius(float(np.sqrt(limit)), bound) * (1 + 1e-9) + 1e-6 * bound
    return radius, space.reach(radius, 2 * bound)  # coordinates: centred, so within twice the bound


def candidates(db: Database, px_size: int, ids: np.ndarray, features: np.ndarray, limit: float) -> np.ndarray:
    """(k, 2) distinct pairs (lower id first) of each of ``ids`` with every kept point within reach,
    itself excepted; the others may be any indexed image (the caller keeps those in scope)."""
    center, axes = axes_of(db, px_size)
    h, reach2 = _bounds(limit, px_size)
    found = []
    points = coordinates(center, axes, features)
    for image_id, p, q in zip(ids.tolist(), points.tolist(), points.astype(np.float32)):
        box = [v for x in p[:POINT_DIMS] for v in (x - h, x + h)]
        rows = db.execute(_QUERY, box).fetchall()
        hits = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        kept = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        hits = hits[space.close(kept, np.broadcast_to(q, kept.shape), reach2) & (hits != image_id)]
        found.append(np.stack([np.minimum(hits, image_id), np.maximum(hits, image_id)], axis=1))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
