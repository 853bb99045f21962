"""Pure numpy: where matching pairs can be, found by a range search in a small space of exact
lower bounds. No I/O, no processes, deterministic.

Flows in: each image's coarse block vector (``kernel.coarse``) and the SSD limit of a search.
Flows out: a point per image, a grid of cells over those points, and, for a block of images,
every pair close enough in that space to be worth the kernel's look.

Why no matching pair is ever lost:
- Orbit features. Turns and the mirror only reorder the coarse grid's blocks within their
  orbits (the centre; the four corners; ...); the values of each orbit sorted are the same in
  every orientation, and ||f(a) - f(b)|| <= ||coarse(a) - T coarse(b)|| <= sqrt(SSD(a, T b))
  for every orientation T: one point per image, whatever is searched.
- Principal axes. Rotating that space onto the axes of its spread keeps every distance; the
  first ``dims`` axes carry most of the spread, and a distance over the first CLOSE_DIMS axes
  is still a lower bound.
- Cells. A grid of side >= r = sqrt(limit) over those axes: two points within r of each other
  are in the same cell or a neighbouring one along every axis.
- float32 copies of the points are compared with a margin that covers their rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DIMS = 4  # grid axes: at 200k real-photo windows, 4 leave 0.06% of all pairs in neighbouring cells
CLOSE_DIMS = 32  # axes compared before the block sums: 2.8x fewer pairs left than 18 orbit sums
MAX_PAIRS = 1 << 18  # candidate pairs expanded at once (about 40 MB of indices, points and differences)
_U32 = 2.0**-24


@lru_cache(maxsize=8)
def orbit_projection(g: int) -> np.ndarray:
    """(orbits, g*g): row k is 1/sqrt(|orbit k|) on the blocks of orbit k of the g x g grid."""
    def images(i: int, j: int) -> list[tuple[int, int]]:
        out = []
        for x, y in ((i, j), (i, g - 1 - j)):
            for _ in range(4):
                out.append((x, y))
                x, y = y, g - 1 - x
        return out

    canon = {(i, j): min(images(i, j)) for i in range(g) for j in range(g)}
    orbits = sorted(set(canon.values()))
    rows = np.zeros((len(orbits), g * g))
    for (i, j), o in canon.items():
        rows[orbits.index(o), i * g + j] = 1.0
    return rows / np.sqrt(rows.sum(axis=1, keepdims=True))


def orbit_features(coarse: np.ndarray) -> np.ndarray:
    """(k, g*g*channels) float64 from coarse vectors shaped (k, g, g, channels): each orbit's values,
    sorted, channel by channel. Turns and mirrors only reorder an orbit's blocks, and sorting
    undoes any reordering; matching two sorted lists is the closest of all their orderings, so
    the distance of two feature vectors is at most that of the coarse vectors in any orientation.
    (Measured at 200k real-photo windows: 2.5 times fewer pairs within reach than orbit sums.)"""
    k, g, _, c = coarse.shape
    flat = coarse.reshape(k, g * g, c)
    out = []
    for row in orbit_projection(g):
        members = np.flatnonzero(row)
        out.append(np.sort(flat[:, members, :], axis=1).transpose(0, 2, 1).reshape(k, len(members) * c))
    return np.concatenate(out, axis=1)


@dataclass(frozen=True)
class Space:
    """Principal axes of a set of feature points and a grid of cells over the first ``dims``."""

    center: np.ndarray  # (m,) subtracted before rotating
    axes: np.ndarray  # (m, m) orthonormal columns, by decreasing spread
    side: float  # of a cell, >= the search radius
    origin: np.ndarray  # (dims,) one cell below the lowest point
    shape: np.ndarray  # (dims,) cells along each axis, one spare at each end
    radius: float

    @property
    def dims(self) -> int:
        return len(self.origin)

    @property
    def strides(self) -> np.ndarray:
        return np.array([int(np.prod(self.shape[k + 1 :])) for k in range(self.dims)], dtype=np.int64)


def fit(features: np.ndarray, radius: float, dims: int = DIMS) -> Space:
    """The space of ``features`` (n, m) for a search radius (sqrt of the SSD limit)."""
    m = features.shape[1]
    dims = min(dims, m)
    sample = features[:: max(1, len(features) // 50_000)].astype(np.float64)
    center = sample.mean(axis=0)
    spread = np.cov((sample - center).T) if len(sample) > 1 else np.eye(m)
    values, vectors = np.linalg.eigh(np.atleast_2d(spread))
    axes = vectors[:, np.argsort(values, kind="stable")[::-1]]
    partial = Space(center, axes, 1.0, np.zeros(dims), np.ones(dims, dtype=np.int64), radius)
    top = project(partial, features, dims)
    low, high = top.min(axis=0), top.max(axis=0)
    # slack so that rounding in the projection never moves a pair within r two cells apart
    side = max(radius * (1 + 1e-6) + 1e-6, float((high - low).max()) / 2**14)
    origin = low - side
    shape = np.floor((high - origin) / side).astype(np.int64) + 2
    return Space(center, axes, side, origin, shape, radius)


def project(space: Space, features: np.ndarray, dims: int | None = None, chunk: int = 65_536) -> np.ndarray:
    """The first ``dims`` coordinates of the points on the principal axes, float64 (distances are
    those of the features); a chunk at a time, so a million points never need a float64 copy."""
    axes = space.axes[:, :dims] if dims is not None else space.axes
    out = np.empty((len(features), axes.shape[1]))
    for start in range(0, len(features), chunk):
        out[start : start + chunk] = (features[start : start + chunk] - space.center) @ axes
    return out


def cell_keys(space: Space, points: np.ndarray) -> np.ndarray:
    """One int64 per point naming its cell; a neighbour's key is the key plus a fixed offset."""
    cells = np.floor((points[:, : space.dims] - space.origin) / space.side).astype(np.int64)
    cells = np.clip(cells, 1, space.shape - 2)  # points are inside by construction; rounding aside
    return cells @ space.strides


def neighbour_offsets(space: Space, *, half: bool) -> np.ndarray:
    """Key offsets of the 3^dims neighbouring cells (``half``: only those after the cell itself)."""
    grid = np.stack(np.meshgrid(*([np.array([-1, 0, 1])] * space.dims), indexing="ij"), axis=-1).reshape(-1, space.dims)
    deltas = grid @ space.strides
    return np.sort(deltas[deltas > 0] if half else deltas)


@dataclass(frozen=True)
class Grid:
    """Points sorted by cell: ``order[i]`` is the point at sorted position i; the cells present,
    where each starts in the sorted order and how many points it holds."""

    order: np.ndarray
    keys: np.ndarray  # sorted cell key of each sorted position
    cells: np.ndarray
    starts: np.ndarray
    counts: np.ndarray


def make_grid(keys: np.ndarray, tiebreak: np.ndarray | None = None) -> Grid:
    """Sort points by cell (then by ``tiebreak``, so a block of a cell is compact too)."""
    order = np.lexsort((tiebreak, keys)) if tiebreak is not None else np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    cells, starts, counts = np.unique(sorted_keys, return_index=True, return_counts=True)
    return Grid(order, sorted_keys, cells, starts, counts)


def delta_runs(deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Key offsets as runs of consecutive integers, (first, last) of each, ascending. The last axis
    has stride 1, so a cell's three neighbours along it have consecutive keys, and the points of
    such a run of cells are one range of a grid's sorted points: 3^dims offsets are 3^(dims-1)
    ranges, each found with two binary searches."""
    d = np.unique(np.asarray(deltas, dtype=np.int64))
    if len(d) == 0:
        return d, d
    breaks = np.flatnonzero(np.diff(d) != 1) + 1
    return d[np.concatenate([[0], breaks])], d[np.concatenate([breaks - 1, [len(d) - 1]])]


def _ranges(keys: np.ndarray, right: Grid, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``keys``, where the points of ``right`` in cells key+first .. key+last begin and end."""
    return (np.searchsorted(right.keys, keys + first, side="left"),
            np.searchsorted(right.keys, keys + last, side="right"))


def neighbour_counts(keys: np.ndarray, right: Grid, deltas: np.ndarray) -> np.ndarray:
    """For each of ``keys`` (sorted), how many points of ``right`` its neighbouring cells hold:
    the candidate pairs before any distance is computed (counted once per distinct cell)."""
    cells, inverse = np.unique(keys, return_inverse=True)
    total = np.zeros(len(cells), dtype=np.int64)
    for first, last in zip(*delta_runs(deltas)):
        begin, end = _ranges(cells, right, int(first), int(last))
        total += end - begin
    return total[inverse]


def pair_blocks(left: Grid, lo: int, hi: int, right: Grid, deltas: np.ndarray, *, same: bool):
    """Yield (i, j) arrays: sorted positions in ``left`` (within [lo, hi)) and in ``right`` of
    every pair whose cells are neighbours, at most about MAX_PAIRS at a time. ``same``: left is
    right, ``deltas`` the half offsets, and each pair comes once (j > i within a cell)."""
    keys = left.keys[lo:hi]
    points, begin, length = [], [], []
    for first, last in zip(*delta_runs(deltas)):  # a run of neighbouring cells at a time (``delta_runs``)
        start, end = _ranges(keys, right, int(first), int(last))
        hit = np.flatnonzero(end > start)
        points.append(hit + lo)
        begin.append(start[hit])
        length.append(end[hit] - start[hit])
    if same:  # the same cell: the points after this one
        at = np.searchsorted(left.cells, keys)
        i = np.arange(lo, hi)
        ends = left.starts[at] + left.counts[at]
        points.append(i)
        begin.append(i + 1)
        length.append(ends - i - 1)
    if not points:  # no offsets: no neighbours
        return
    points, begin, length = (np.concatenate(x).astype(np.int64) for x in (points, begin, length))
    keep = length > 0
    points, begin, length = points[keep], begin[keep], length[keep]
    order = np.argsort(points, kind="stable")  # by left point, so a block's i values stay together
    points, begin, length = points[order], begin[order], length[order]
    total = np.cumsum(length)
    start = 0
    while start < len(points):
        stop = int(np.searchsorted(total, (total[start - 1] if start else 0) + MAX_PAIRS, side="right"))
        stop = max(stop, start + 1)
        n = length[start:stop]
        i = np.repeat(points[start:stop], n)
        offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        j = np.repeat(begin[start:stop], n) + offsets
        yield i, j
        start = stop


def stored_radius(radius: float, points_bound: float) -> float:
    """The radius to search among points kept as float32 (each within 2^-24 of its norm <= bound of
    the true point): two true points within ``radius`` are within this of each other as kept."""
    return radius + 4 * _U32 * points_bound


def missing_from(ids: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The ``ids`` (ascending) not in ``kept`` (ascending): two sorted arrays, no hashing (a million
    each in milliseconds, where np.setdiff1d takes seconds)."""
    if len(kept) == 0:
        return ids.copy()
    at = np.minimum(np.searchsorted(kept, ids), len(kept) - 1)
    return ids[kept[at] != ids]


def reach(radius: float, points_bound: float) -> float:
    """The squared distance two float32 copies of points may show when the true one is <= radius:
    a relative margin for the float32 sum, an absolute one for rounding points of norm <= bound."""
    return float((radius * (1 + 64 * _U32) + 4 * _U32 * points_bound + 1e-9) ** 2)


def close(a: np.ndarray, b: np.ndarray, limit2: float) -> np.ndarray:
    """Mask of the rows where ||a - b||^2 (float32 arrays, row by row) may be <= the true limit."""
    diff = a - b
    return np.einsum("ij,ij->i", diff, diff) <= limit2


def packed_keys(cells: np.ndarray, bits: int) -> np.ndarray:
    """One int64 per cell ((k, dims) ints below 2^bits), the last axis varying fastest, so a run of
    cells along it is a range of keys (the kept point indexes' cells, ``points``, ``tone_points``)."""
    key = np.zeros(len(cells), dtype=np.int64)
    for k in range(cells.shape[1]):
        key = (key << bits) | cells[:, k]
    return key


def packed_ranges(cell: np.ndarray, steps: int, bits: int) -> list[tuple[int, int]]:
    """(first, last) keys of the runs of cells within ``steps`` of ``cell`` along every axis, cells
    clamped to the grid of 2^bits a side."""
    top = (1 << bits) - 1
    spans = [range(max(0, c - steps), min(top, c + steps) + 1) for c in cell[:-1].tolist()]
    lo, hi = max(0, int(cell[-1]) - steps), min(top, int(cell[-1]) + steps)
    prefixes = np.array(np.meshgrid(*spans, indexing="ij")).reshape(len(spans), -1).T
    first = packed_keys(np.hstack([prefixes, np.full((len(prefixes), 1), lo)]), bits)
    return list(zip(first.tolist(), (first + (hi - lo)).tolist()))
