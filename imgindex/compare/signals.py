"""Pure numpy: the *tone* signal, a second way for two stored tensors to match. No I/O, deterministic.

Pixel MSE misses what people do to photos: brightness, contrast, saturation, grayscale, mild blur.
Tone compares the pattern of light and dark with brightness and contrast taken out, and checks it
block by block, so a subject that moved in one corner (a different shot) does not pass where a
global edit does. Definitions (the README states them for users):

- Luminance L = (299 R + 587 G + 114 B + 500) // 1000 per pixel, an integer 0..255; n = px * px.
- Per image: S = sum(L), V = n * sum(L^2) - S^2 (integers; V = n^2 times the variance), and the
  centred integers A = n * L - S. Its tone z = A / sqrt(n V) has mean 0 and norm 1. An image whose
  luminance spread is below MIN_STD (V < n^2 MIN_STD^2: flat, nearly blank) has no tone.
- A pair (a, b) in orientation T (as ``kernel.ORIENTATIONS``): for each block k of a LOCAL_GRID x
  LOCAL_GRID grid (``kernel.grid_edges``), with integer sums over the block of P_a = A_a^2,
  P_b = (T A_b)^2 and Q = A_a * T A_b:
      D_k = P_a / (n V_a) + P_b / (n V_b) - 2 Q / sqrt((n V_a) (n V_b))   (= |z_a - T z_b|^2 on block k)
      local_k = D_k * (n / (2 n_k))   (1 - the correlation, were the whole picture like block k)
  all in float64, in that order, from exact integers.
- The pair's tone score is the largest local_k; its orientation the one with the smallest score
  (ties: the earlier in ORIENTATIONS). It matches when score <= the threshold.

Pruning stays exact: every block's local_k is at most the score, so D_k <= 2 threshold n_k / n,
and the block sum of z_a - T z_b over block k, squared and divided by n_k, is at most D_k
(Cauchy-Schwarz): each image's block sums of z (``coarse``) must lie within a box of the other's
(``box``), in some orientation. (Also, the mean of local_k weighted by block size is 1 - r, r the
Pearson correlation of the luminances: score >= 1 - r.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgindex.compare import kernel

LOCAL_GRID = 10  # blocks per side of the local check: 5 x 5 pixels at 50 px
MIN_STD = 2.0  # luminance spread (0-255) below which an image is too flat to have a tone
MAX_PX = 128  # exact in int64 up to here: n * V and the block sums of A^2 stay below 2^53
RANK_MAX_PX = 100  # ranks reach 2n: their block sums of A^2 stay within int64 up to here
BOUND_SLACK = 1e-9  # relative: covers the float64 rounding of z and its block sums in the bound


class ToneUnavailable(ValueError):
    """Tone needs tensors of at most MAX_PX pixels a side."""


def luminance(tensors: np.ndarray) -> np.ndarray:
    """(k, px, px, 3) uint8 -> (k, px, px) int64 luminance 0..255, rounded half up."""
    weighted = np.einsum("kijc,c->kij", tensors, np.array([299, 587, 114], dtype=np.int32), dtype=np.int32)
    return ((weighted + 500) // 1000).astype(np.int64)


def ranks(lum: np.ndarray) -> np.ndarray:
    """Each pixel's rank among its image's luminances, ties sharing the mean of their ranks, doubled
    so it is an integer: 2 (number below) + (number equal) + 1, from 1 to 2n. Any monotone change of
    brightness, contrast or gamma, and clipping, keep the order: ranks change only where ties form."""
    k, n = len(lum), lum[0].size
    flat = lum.reshape(k, -1)
    counts = np.bincount((flat + 256 * np.arange(k)[:, None]).ravel(), minlength=256 * k).reshape(k, 256)
    below = np.cumsum(counts, axis=1) - counts
    doubled = 2 * below + counts + 1
    return np.take_along_axis(doubled, flat, axis=1).reshape(lum.shape)


@dataclass(frozen=True)
class Tones:
    """The tone facts of some images, in the order given."""

    centred: np.ndarray  # (k, px, px) int64: A = n L - S
    spread: np.ndarray  # (k,) int64: n V (0 for no tone)
    has_tone: np.ndarray  # (k,) bool
    power: np.ndarray  # (k, g, g) float64: each local block's sum of A^2 (exact integers below 2^53)


def tones(tensors: np.ndarray, *, rank: bool = False) -> Tones:
    """A, n V and whether each image has a tone at all (its luminance is not flat). ``rank``: of the
    luminance's ranks instead (``ranks``), for the rank signal."""
    px = tensors.shape[1]
    most = RANK_MAX_PX if rank else MAX_PX
    if px > most:
        raise ToneUnavailable(f"the {'rank' if rank else 'tone'} signal works on tensors of at most {most} px"
                              f" (this index has {px}).")
    n = px * px
    lum = luminance(tensors)
    s = lum.reshape(len(lum), -1).sum(axis=1)
    v = n * np.einsum("kij,kij->k", lum, lum) - s * s
    has = v >= n * n * MIN_STD**2
    if rank:
        lum = ranks(lum)
        s = lum.reshape(len(lum), -1).sum(axis=1)
        v = n * np.einsum("kij,kij->k", lum, lum) - s * s
    centred = n * lum - s[:, None, None]
    edges = kernel.grid_edges(px, LOCAL_GRID)
    g = len(edges) - 1
    power = _block_sums(centred * centred, edges).reshape(-1, g, g).astype(np.float64)
    return Tones(centred, np.where(has, n * v, 0), has, power)


def coarse(t: Tones, px: int) -> np.ndarray:
    """Block sums of z over the local blocks / sqrt(block size): (k, g, g, 1) float64, zeros for
    images with no tone. Per block, |coarse_k(a) - coarse_k(T b)|^2 <= D_k (Cauchy-Schwarz), in
    every orientation T (the blocks are symmetric: T maps blocks to blocks)."""
    edges = kernel.grid_edges(px, LOCAL_GRID)
    g = len(edges) - 1
    sums = _block_sums(t.centred, edges).reshape(-1, g, g, 1).astype(np.float64)  # exact integers below 2^53
    sizes = np.diff(edges).astype(np.float64)
    scale = np.where(t.has_tone, 1.0 / np.sqrt(np.maximum(t.spread, 1).astype(np.float64)), 0.0)
    return sums / np.sqrt(np.outer(sizes, sizes))[None, :, :, None] * scale[:, None, None, None]


def box(threshold: float, px: int) -> np.ndarray:
    """(g, g): how far apart a pair within ``threshold`` can be in each local block's coarse value,
    in any orientation: its local_k <= threshold means D_k <= 2 threshold n_k / n."""
    sizes = np.diff(kernel.grid_edges(px, LOCAL_GRID)).astype(np.float64)
    return np.sqrt(2.0 * threshold * np.outer(sizes, sizes) / (px * px)) * (1 + BOUND_SLACK) + 1e-9


def merged(coarse: np.ndarray, threshold: float, px: int) -> tuple[np.ndarray, np.ndarray]:
    """The block sums of z over blocks of 2 x 2 local blocks / sqrt(their size), and their box: a
    pair within ``threshold`` has D_c <= 2 threshold n_c / n on each (the sum of its local blocks'
    D_k). The merged blocks are symmetric too. A grid of an odd number of blocks (tiny tensors)
    is not merged."""
    edges = kernel.grid_edges(px, LOCAL_GRID)
    g = len(edges) - 1
    if g % 2:
        return coarse, box(threshold, px)
    sizes = np.diff(edges).astype(np.float64)
    sums = coarse * np.sqrt(np.outer(sizes, sizes)).astype(coarse.dtype)[None, :, :, None]  # back to sums of z
    k = len(coarse)
    merged_sums = sums.reshape(k, g // 2, 2, g // 2, 2, coarse.shape[-1]).sum(axis=(2, 4))
    merged_sizes = sizes.reshape(-1, 2).sum(axis=1)
    area = np.outer(merged_sizes, merged_sizes)
    values = merged_sums / np.sqrt(area).astype(coarse.dtype)[None, :, :, None]
    return values, np.sqrt(2.0 * threshold * area / (px * px)) * (1 + BOUND_SLACK) + 1e-9


def _block_sums(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Exact int64 sums of (k, px, px) over the blocks of ``edges`` x ``edges``: (k, g*g)."""
    starts = edges[:-1]
    sums = np.add.reduceat(np.add.reduceat(values, starts, axis=1), starts, axis=2)
    return sums.reshape(len(values), -1)


def scores(t: Tones, ia: np.ndarray, ib: np.ndarray, orientation: int, *, limit: float | None = None,
           batch: int = 512) -> np.ndarray:
    """The tone score of each pair (ia[k], ib[k]) of ``t`` in one orientation (float64; inf when
    either image has no tone). With ``limit``, a pair whose every other block (a quarter of the
    work) already has a local score past it gets that block's score instead, still > limit."""
    px = t.centred.shape[1]
    edges = kernel.grid_edges(px, LOCAL_GRID)
    out = np.full(len(ia), np.inf)
    for start in range(0, len(ia), batch):
        a_at, b_at = ia[start : start + batch], ib[start : start + batch]
        ok = np.flatnonzero(t.has_tone[a_at] & t.has_tone[b_at])
        if len(ok) == 0:
            continue
        a_at, b_at = a_at[ok], b_at[ok]
        a = t.centred[a_at]
        b = kernel.orient(t.centred[b_at][..., None], orientation)[..., 0]
        pb = kernel.orient(t.power[b_at][..., None], orientation)[..., 0]
        part = out[start : start + batch]
        if limit is not None:
            rows = _every_other(edges)
            sub = _local(a[:, rows][:, :, rows], b[:, rows][:, :, rows], t.power[a_at][:, ::2, ::2],
                         pb[:, ::2, ::2], t.spread[a_at], t.spread[b_at], _sub_edges(edges), px)
            past = sub > limit
            part[ok[past]] = sub[past]
            ok, a, b, a_at, b_at, pb = (x[~past] for x in (ok, a, b, a_at, b_at, pb))
            if len(ok) == 0:
                continue
        part[ok] = _local(a, b, t.power[a_at], pb, t.spread[a_at], t.spread[b_at], edges, px)
    return out


def scores_in(t: Tones, ia: np.ndarray, ib: np.ndarray, orient: np.ndarray, *, limit: float | None = None) -> np.ndarray:
    """``scores`` of pairs (ia[k], ib[k]) each in its own orientation ``orient[k]``."""
    out = np.empty(len(ia))
    for orientation in np.unique(orient).tolist():
        sel = orient == orientation
        out[sel] = scores(t, ia[sel], ib[sel], orientation, limit=limit)
    return out


def _local(a, b, pa, pb, spread_a, spread_b, edges: np.ndarray, px: int) -> np.ndarray:
    """The largest local_k over the blocks of ``edges`` (``pa``, ``pb``: those blocks' sums of A^2)."""
    n = px * px
    sizes = np.diff(edges)
    q = _block_sums(a * b, edges).astype(np.float64)
    ra = spread_a.astype(np.float64)[:, None]
    rb = spread_b.astype(np.float64)[:, None]
    d = pa.reshape(len(a), -1) / ra + pb.reshape(len(a), -1) / rb - 2.0 * q / np.sqrt(ra * rb)
    return (d * (n / (2.0 * np.outer(sizes, sizes))).reshape(-1)).max(axis=1)


def _every_other(edges: np.ndarray) -> np.ndarray:
    """Pixel rows (and columns) of every other block of ``edges``, from the first."""
    return np.concatenate([np.arange(lo, hi) for lo, hi in zip(edges[:-1:2], edges[1::2])])


def _sub_edges(edges: np.ndarray) -> np.ndarray:
    """The edges of those blocks once the rows between them are left out."""
    return np.concatenate([[0], np.cumsum(np.diff(edges)[::2])])


@dataclass(frozen=True)
class ToneMatches:
    """Pairs by position (a < b as given), their score and best orientation."""

    rows: np.ndarray
    cols: np.ndarray
    score: np.ndarray
    orient: np.ndarray


def best(ia: np.ndarray, ib: np.ndarray, orient: np.ndarray, score: np.ndarray, threshold: float) -> ToneMatches:
    """Of (pair, orientation) scores, each pair's smallest, ties to the earlier orientation; only
    pairs within the threshold."""
    keep = score <= threshold
    ia, ib, orient, score = ia[keep], ib[keep], orient[keep], score[keep]
    if len(ia) == 0:
        empty = np.empty(0, np.int64)
        return ToneMatches(empty, empty, np.empty(0), empty)
    order = np.lexsort((orient, score, ib, ia))
    ia, ib, orient, score = ia[order], ib[order], orient[order], score[order]
    first = np.ones(len(ia), dtype=bool)
    first[1:] = (ia[1:] != ia[:-1]) | (ib[1:] != ib[:-1])
    return ToneMatches(ia[first], ib[first], score[first], orient[first])
