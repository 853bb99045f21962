"""Pure numpy: exact MSE matches between blocks of tensors. No I/O, no processes, deterministic.

Definitions (the README states them for users):
- A tensor is uint8 of shape (px, px, 3). n = px * px * 3.
- SSD(a, b) = sum((a - b)**2) over all n values, computed in integers; MSE = SSD / n.
- For a pair (a, b), a is the lower id. The recorded orientation T says how b relates to a:
  b = T(a), where T flips left-right (``mirrored``, only with ``mirror``) and then turns the
  picture ``rotation`` degrees clockwise. The smallest SSD over the orientations searched wins;
  ties go to the earlier orientation in ``ORIENTATIONS``.
- A pair matches when MSE <= threshold, compared in float64 as ``ssd / n <= threshold``.

Speed without giving up exactness: a pair's SSD is bounded from below by the SSD of block
sums (Cauchy-Schwarz: for a block of m values, sum(d**2) >= sum(d)**2 / m). ``coarse()``
makes those block vectors (scaled by 1/sqrt(m)), a float32 matrix product gives the bound for
every pair and orientation at once, with a proven margin for its rounding error, and only the
pairs whose bound is within the threshold are checked exactly, in integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Orientation:
    """b = T(a): flip a left-right if ``mirrored``, then turn it ``rotation`` degrees clockwise."""

    rotation: int
    mirrored: bool


ORIENTATIONS = tuple(Orientation(r, m) for m in (False, True) for r in (0, 90, 180, 270))
# ORIENTATIONS[INVERSE[o]] undoes ORIENTATIONS[o]: exact_ssd(a, b, o) == exact_ssd(b, a, INVERSE[o])
# (a turn's inverse is the opposite turn; a mirror then a turn is its own inverse)
INVERSE = tuple(ORIENTATIONS.index(Orientation((360 - o.rotation) % 360 if not o.mirrored else o.rotation, o.mirrored))
                for o in ORIENTATIONS)
GRID = 5  # coarse blocks per side: 5 x 5 x 3 = 75 values per image
_U32 = 2.0**-24  # float32 unit roundoff


def sample_positions(px: int, step: int = 4) -> np.ndarray:
    """Rows (and columns) of a tensor's *sample*: every ``step``-th from each edge, so the set is its
    own mirror image and a turned tensor's sample is the turned sample. The SSD of two samples is
    part of the SSD of the tensors, in any orientation: an exact lower bound, from 1/13 of the values."""
    left = list(range(0, (px + 1) // 2, step))
    return np.array(sorted(set(left) | {px - 1 - i for i in left}), dtype=np.int64)


def sample(tensors: np.ndarray) -> np.ndarray:
    """The sample of each tensor (k, px, px, c) -> (k, s, s, c), uint8."""
    at = sample_positions(tensors.shape[1])
    return np.ascontiguousarray(tensors[:, at][:, :, at])


def orientation_indices(rotate: bool, mirror: bool) -> tuple[int, ...]:
    """Which of ORIENTATIONS a search tries, in tie-breaking order."""
    rotations = (0, 1, 2, 3) if rotate else (0,)
    return rotations + (tuple(4 + r for r in rotations) if mirror else ())


def orient(tensors: np.ndarray, index: int) -> np.ndarray:
    """Undo ORIENTATIONS[index] on a batch shaped (k, side, side, channels): T^-1(b), to compare with a."""
    o = ORIENTATIONS[index]
    out = np.rot90(tensors, k=o.rotation // 90, axes=(1, 2))  # counter-clockwise undoes clockwise
    return out[:, :, ::-1] if o.mirrored else out


def ssd_threshold(threshold: float, n_values: int) -> float:
    """The SSD a pair may have and still match: MSE = ssd / n <= threshold.

    Returned as the largest integer SSD that passes the float64 test, so integer
    comparisons agree exactly with ``ssd / n <= threshold``.
    """
    if threshold < 0 or not np.isfinite(threshold):
        raise ValueError("threshold must be a finite number >= 0")
    limit = int(np.floor(threshold * n_values)) + 2
    while limit >= 0 and not (limit / n_values <= threshold):
        limit -= 1
    return float(limit)


def grid_edges(px: int, grid: int = GRID) -> np.ndarray:
    """Block boundaries along one side, symmetric under reversal so rotations map blocks to blocks."""
    grid = max(1, min(grid, px))
    left = [i * px // grid for i in range(grid // 2 + 1)]
    edges = sorted(set(left + [px - e for e in left]))
    return np.array(edges, dtype=np.int64)


def block_sums(tensors: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Sum of each block of ``edges`` x ``edges`` per channel, exact, int64 of shape (k, g, g, 3)."""
    k, px = tensors.shape[0], tensors.shape[1]
    sizes = np.diff(edges)
    g = len(sizes)
    if (sizes == sizes[0]).all():  # equal blocks (px a multiple of the grid): two reshaped sums, fast
        rows = tensors.reshape(k, g, sizes[0], px * 3).sum(axis=2, dtype=np.int32)
        sums = rows.reshape(k, g, g, sizes[0], 3).sum(axis=3)
    else:
        starts = edges[:-1]
        sums = np.add.reduceat(np.add.reduceat(tensors.astype(np.int32), starts, axis=1), starts, axis=2)
    return sums.astype(np.int64)


def coarse(tensors: np.ndarray, edges: np.ndarray, sums: np.ndarray | None = None) -> np.ndarray:
    """Block sums / sqrt(block size), shape (k, g, g, 3) float64: ||coarse(a)-coarse(b)||^2 <= SSD(a, b)."""
    sums = block_sums(tensors, edges) if sums is None else sums
    sizes = np.diff(edges).astype(np.float64)
    return sums / np.sqrt(np.outer(sizes, sizes))[None, :, :, None]


def coarse_center(edges: np.ndarray) -> np.ndarray:
    """The coarse vector of a uniform mid-grey image: subtracting it keeps float32 products small."""
    sizes = np.diff(edges).astype(np.float64)
    return (127.5 * np.sqrt(np.outer(sizes, sizes)))[None, :, :, None] * np.ones((1, 1, 1, 3))


@dataclass(frozen=True)
class Candidates:
    """Pairs (rows[i], cols[j]) in orientation ``orient`` whose lower bound is within the threshold."""

    rows: np.ndarray
    cols: np.ndarray
    orient: np.ndarray


def candidates(
    coarse_a: np.ndarray,
    coarse_b: np.ndarray,
    center: np.ndarray,
    limit: float,
    orientations: tuple[int, ...],
    *,
    upper: bool,
) -> Candidates:
    """Pairs whose block-sum bound does not rule out SSD <= limit.

    ``upper``: a and b are the same block; keep only row < col. The float32 product is
    corrected by a bound on its rounding error, so no pair that matches is ever dropped.
    """
    ka, kb = len(coarse_a), len(coarse_b)
    if ka == 0 or kb == 0:
        return Candidates(*(np.empty(0, np.int64),) * 3)
    a = (coarse_a - center).reshape(ka, -1)
    b = coarse_b - center  # the centre is symmetric: orienting b after centring is the same
    norm_a = np.einsum("ij,ij->i", a, a)
    norm_b = np.einsum("ij,ij->i", b.reshape(kb, -1), b.reshape(kb, -1))  # no orientation changes a norm
    d = a.shape[1]
    gamma = (d + 4) * _U32 / (1 - (d + 4) * _U32)  # dot product of length d, inputs rounded to float32
    # bound = |a|^2 + |b|^2 - 2 a.b <= limit  <=>  a.b >= (|a|^2 + |b|^2 - limit) / 2. The float32
    # product may be off by gamma |a| |b|; the threshold, rounded to float32, by one ulp of itself.
    need = (norm_a[:, None] + norm_b[None, :] - limit) / 2.0
    need -= gamma * np.sqrt(norm_a)[:, None] * np.sqrt(norm_b)[None, :] + 1e-6 * (1 + limit)
    need -= np.abs(need) * (2 * _U32)
    need = need.astype(np.float32)
    if upper:
        need[np.tril_indices(ka, 0, kb)] = np.inf
    a32 = a.astype(np.float32)
    found_r, found_c, found_o = [], [], []
    for o in orientations:
        dot = a32 @ orient(b, o).reshape(kb, -1).astype(np.float32).T
        r, c = np.nonzero(dot >= need)
        found_r.append(r)
        found_c.append(c)
        found_o.append(np.full(len(r), o, dtype=np.int64))
    return Candidates(np.concatenate(found_r), np.concatenate(found_c), np.concatenate(found_o))


def exact_ssd(a: np.ndarray, b: np.ndarray, orientation: int, *, batch: int = 1024) -> np.ndarray:
    """SSD between a[i] and ORIENTATIONS[orientation] of b[i], exactly, as int64 (no uint8 wrap).

    Differences in int16, squares in float32 (each <= 255^2, exact), summed 250 at a time in
    float32 (each partial < 2^24, so exact in any order), the partials in float64: six times
    faster than int64 arithmetic, and still exact."""
    out = np.empty(len(a), dtype=np.int64)
    for start in range(0, len(a), batch):
        aa = a[start : start + batch]
        diff = (aa.astype(np.int16) - orient(b[start : start + batch], orientation)).reshape(len(aa), -1)
        squares = diff.astype(np.float32)
        squares *= squares
        pad = -squares.shape[1] % _EXACT_RUN
        if pad:
            squares = np.concatenate([squares, np.zeros((len(aa), pad), np.float32)], axis=1)
        partial = squares.reshape(len(aa), -1, _EXACT_RUN).sum(axis=2)
        out[start : start + batch] = partial.sum(axis=1, dtype=np.float64).astype(np.int64)
    return out


_EXACT_RUN = 250  # 250 * 255^2 < 2^24: a float32 sum of that many squares is exact


def ssd_within(ta: np.ndarray, ia: np.ndarray, tb: np.ndarray, ib: np.ndarray, orientation: int,
               limit: float) -> np.ndarray:
    """``exact_ssd`` of ta[ia[k]] and tb[ib[k]], except that a pair whose every fourth row alone is
    past ``limit`` (a lower bound: part of a sum of squares) gets that partial sum instead, still
    > limit, for a quarter of the arithmetic. Near misses that survive every bound are mostly far
    past the limit (half of them 10x, at a million real-photo windows)."""
    a, b = ta[ia], orient(tb[ib], orientation)  # whole rows: numpy copies those fastest
    out = exact_ssd(a[:, ::4], b[:, ::4], 0)
    close = np.flatnonzero(out <= limit)
    if len(close):
        out[close] = exact_ssd(a[close], b[close], 0)
    return out


@dataclass(frozen=True)
class Matches:
    """Matching pairs by position: a[rows[i]] ~ b[cols[i]] with ``ssd[i]`` in orientation ``orient[i]``."""

    rows: np.ndarray
    cols: np.ndarray
    ssd: np.ndarray
    orient: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def best_seen(rows, cols, ssd, orient, flip: np.ndarray | None) -> Matches:
    """``best_per_pair``, with the pairs where ``flip`` is set seen from b's side (b has the lower
    id, which is stored first): their orientations inverted first, so ties go to the earliest
    orientation from that side. Every orientation within the limit is among the candidates (one
    that failed its bound is past the limit), so no exact check is needed again."""
    if flip is not None:
        orient = orient.copy()
        orient[flip] = np.asarray(INVERSE)[orient[flip]]
    return best_per_pair(rows, cols, ssd, orient)


def best_per_pair(rows, cols, ssd, orient) -> Matches:
    """Keep, for each (row, col), the smallest SSD; ties go to the earliest orientation."""
    if len(rows) == 0:
        return Matches(*(np.empty(0, np.int64),) * 4)
    order = np.lexsort((orient, ssd, cols, rows))
    rows, cols, ssd, orient = rows[order], cols[order], ssd[order], orient[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return Matches(rows[first], cols[first], ssd[first], orient[first])


def match_blocks(
    a: np.ndarray,
    b: np.ndarray,
    threshold: float,
    orientations: tuple[int, ...],
    *,
    same: bool,
    coarse_a: np.ndarray | None = None,
    coarse_b: np.ndarray | None = None,
) -> Matches:
    """All pairs (i of a, j of b) with MSE <= threshold in their best orientation; ``same``: a is b, i < j.

    ``coarse_a``/``coarse_b``: ``coarse()`` of a and b when the caller keeps them with its chunks.
    """
    px = a.shape[1]
    n_values = px * px * 3
    limit = ssd_threshold(threshold, n_values)
    edges = grid_edges(px)
    center = coarse_center(edges)
    ca = coarse(a, edges) if coarse_a is None else coarse_a
    cb = ca if same else (coarse(b, edges) if coarse_b is None else coarse_b)
    cand = candidates(ca, cb, center, limit, orientations, upper=same)
    return confirm(cand, a, np.arange(len(a)), b, np.arange(len(b)), limit, orientations)


def confirm(
    cand: Candidates,
    a: np.ndarray,
    a_index: np.ndarray,
    b: np.ndarray,
    b_index: np.ndarray,
    limit: float,
    orientations: tuple[int, ...],
    flip=None,
) -> Matches:
    """Check candidates exactly. ``a`` holds the tensors of rows ``a_index`` (ascending), ``b`` of
    cols ``b_index``: only the candidates' tensors need to be at hand. ``flip(rows, cols)``: which
    pairs are to be seen from b's side (see ``best_seen``)."""
    rows, cols, orient_, ssd = [], [], [], []
    for o in orientations:
        sel = cand.orient == o
        if not sel.any():
            continue
        r, c = cand.rows[sel], cand.cols[sel]
        s = exact_ssd(a[np.searchsorted(a_index, r)], b[np.searchsorted(b_index, c)], o)
        keep = s <= limit
        rows.append(r[keep])
        cols.append(c[keep])
        ssd.append(s[keep])
        orient_.append(np.full(int(keep.sum()), o, dtype=np.int64))
    if not rows:
        return best_per_pair(*(np.empty(0, np.int64),) * 4)
    rows_, cols_ = np.concatenate(rows), np.concatenate(cols)
    return best_seen(rows_, cols_, np.concatenate(ssd), np.concatenate(orient_),
                     None if flip is None else flip(rows_, cols_))


def oriented_close(coarse: np.ndarray, ia: np.ndarray, ib: np.ndarray, limit2: float, orientations: tuple[int, ...],
                   *, batch: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """(pair, orientation) of every pair k = (coarse[ia[k]], coarse[ib[k]]) of centred float32 coarse
    vectors whose block-sum bound in that orientation is within ``limit2`` (a squared distance that
    already carries the float32 margin: ``space.reach``). Gathered a batch at a time: a task may
    have millions of pairs left."""
    found_k, found_o = [], []
    for start in range(0, len(ia), batch):
        a = coarse[ia[start : start + batch]]
        b = coarse[ib[start : start + batch]]
        for o in orientations:
            diff = (a - orient(b, o)).reshape(len(a), -1)
            k = np.flatnonzero(np.einsum("ij,ij->i", diff, diff) <= limit2)
            found_k.append(k + start)
            found_o.append(np.full(len(k), o, dtype=np.int64))
    if not found_k:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(found_k), np.concatenate(found_o)


DENSE_SHARE = 0.03  # candidates per combination above which one matrix product beats pair-by-pair
DENSE_MAX = 4_000_000  # combinations in one product (a 32 MB matrix)


def _dense_ssd(ta: np.ndarray, ia: np.ndarray, tb: np.ndarray, ib: np.ndarray, orientation: int) -> np.ndarray | None:
    """The exact SSD of each pair (ta[ia[k]], tb[ib[k]]) from matrix products over the distinct
    images, when the pairs are dense among them (clusters of near-copies), else None.

    SSD = |a|^2 + |b|^2 - 2 a.b. The products run in float32 on runs of 250 values: every
    partial sum is an integer below 250 * 255^2 < 2^24, so exact in any order (BLAS's too); the
    runs are added in float64, exact below 2^53. (A sample of the tasks at a million images: 26 s
    pair by pair, 7.8 s with this.)"""
    left, li = np.unique(ia, return_inverse=True)
    right, ri = np.unique(ib, return_inverse=True)
    if len(ia) < 2000 or len(ia) < DENSE_SHARE * len(left) * len(right) or len(left) * len(right) > DENSE_MAX:
        return None
    a = ta[left].reshape(len(left), -1)
    b = np.ascontiguousarray(orient(tb[right], orientation)).reshape(len(right), -1)
    dots = np.zeros((len(left), len(right)))
    norm_a, norm_b = np.zeros(len(left)), np.zeros(len(right))
    for start in range(0, a.shape[1], _EXACT_RUN):
        pa = a[:, start : start + _EXACT_RUN].astype(np.float32)
        pb = b[:, start : start + _EXACT_RUN].astype(np.float32)
        dots += pa @ pb.T
        norm_a += np.einsum("ij,ij->i", pa, pa)
        norm_b += np.einsum("ij,ij->i", pb, pb)
    return (norm_a[li] + norm_b[ri] - 2 * dots[li, ri]).astype(np.int64)


def confirm_pairs(ta: np.ndarray, ia: np.ndarray, tb: np.ndarray, ib: np.ndarray, pair: np.ndarray,
                  orient_: np.ndarray, limit: float, orientations: tuple[int, ...], *, batch: int = 4096,
                  flip: np.ndarray | None = None) -> Matches:
    """Exact check of (pair, orientation) candidates: pair k compares ta[ia[k]] with tb[ib[k]].
    Returns Matches with rows = pair numbers (cols all 0) and the best orientation of each.

    ``flip[k]``: pair k is to be seen from b's side (see ``best_seen``)."""
    rows, ssd, kept = [], [], []
    for o in orientations:
        k_all = pair[orient_ == o]
        dense = _dense_ssd(ta, ia[k_all], tb, ib[k_all], o)
        if dense is not None:
            keep = dense <= limit
            rows.append(k_all[keep])
            ssd.append(dense[keep])
            kept.append(np.full(int(keep.sum()), o, dtype=np.int64))
            continue
        for start in range(0, len(k_all), batch):
            k = k_all[start : start + batch]
            s = ssd_within(ta, ia[k], tb, ib[k], o, limit)
            keep = s <= limit
            rows.append(k[keep])
            ssd.append(s[keep])
            kept.append(np.full(int(keep.sum()), o, dtype=np.int64))
    if not rows:
        return best_per_pair(*(np.empty(0, np.int64),) * 4)
    rows_ = np.concatenate(rows)
    return best_seen(rows_, np.zeros_like(rows_), np.concatenate(ssd), np.concatenate(kept),
                     None if flip is None else flip[rows_])
