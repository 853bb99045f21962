"""Pure numpy: the motion check, which tells two shots of a moving scene from two copies of one picture.
No I/O, deterministic, exact in integers.

A subject that moved a little between two shots leaves their tensors close (pixel MSE of a re-encode
or less, when the subject is small or smooth), but the part that moved is the other's *shifted*: in
the blocks it covers, the other picture moved by a pixel or two matches better than in place. Edits
and re-encodes do not move anything: noise, blur, resampling and colour change leave each block
best compared in place, but for chance gains as small as their noise.

Definitions (the README states them for users). Tensors a and b (px x px x 3, b already in the pair's
orientation); R = max(1, round(px / 25)) pixels of shift, blocks of B = max(2, round(px / 5)) pixels a
side laid every B // 2 pixels over the inner (px - 2R) x (px - 2R) pixels (and one more at the far
edge), so every shift stays inside the tensor. For each block j:

- ``S0_j``: the sum of squared differences of a and b over the block, all three channels;
- ``Smin_j``: the smallest such sum between a's block and b's block moved by (dy, dx), over the
  (2R + 1)^2 - 1 shifts with |dy|, |dx| <= R other than none;
- ``gain_j = S0_j - Smin_j``.

A pair *moved* when some block has ``gain_j >= FLOOR * B^2`` and ``gain_j * px^2 >= RATIO * B^2 * SSD``
(SSD: the pair's whole SSD in that orientation): the shift explains at least FLOOR per pixel of the
block, and at least RATIO times the pair's mean squared difference per pixel. Both sides are integers
(FLOOR and RATIO are fractions), so the check is exact. Since ``gain_j <= S0_j <= SSD``, identical
tensors never moved, nor does a pair whose every block differs by less than FLOOR per pixel.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

FLOOR = Fraction(3)  # per pixel, squared differences summed over the three channels (0-255 scale)
RATIO = Fraction(4, 5)  # times the pair's mean, per pixel, over the three channels
LOCAL = 4  # times the median block's S0: what moved differs far more than the rest of the picture
CHUNK = 256  # pairs at a time: (CHUNK, px, px) int64 arrays per shift


def geometry(px: int) -> tuple[int, int, np.ndarray]:
    """(R, B, the blocks' first rows and columns within the inner part)."""
    shift = max(1, round(px / 25))
    side = max(2, round(px / 5))
    inner = px - 2 * shift
    if inner < side:
        return shift, side, np.zeros(0, np.int64)
    starts = list(range(0, inner - side + 1, max(1, side // 2)))
    if starts[-1] != inner - side:
        starts.append(inner - side)
    return shift, side, np.array(starts, np.int64)


def _block_sums(diff: np.ndarray, starts: np.ndarray, side: int) -> np.ndarray:
    """(k, m, m) per-pixel values -> (k, blocks) int64 sums over each block (an integral image)."""
    k = len(diff)
    c = np.zeros((k, diff.shape[1] + 1, diff.shape[2] + 1), np.int64)
    np.cumsum(np.cumsum(diff, axis=1, dtype=np.int64), axis=2, out=c[:, 1:, 1:])
    y0, x0 = starts[:, None], starts[None, :]
    y1, x1 = y0 + side, x0 + side
    return (c[:, y1, x1] - c[:, y0, x1] - c[:, y1, x0] + c[:, y0, x0]).reshape(k, -1)


def _in_place(a: np.ndarray, b: np.ndarray, shift: int, starts: np.ndarray, side: int) -> np.ndarray:
    """(k, blocks) int64: each block's S0, the SSD of a and b over it, all three channels."""
    px = a.shape[1]
    d = a[:, shift:px - shift, shift:px - shift].astype(np.int32) - b[:, shift:px - shift, shift:px - shift]
    return _block_sums(np.einsum("kijc,kijc->kij", d, d), starts, side)


def _gains(a: np.ndarray, b: np.ndarray, pair: np.ndarray, block: np.ndarray, shift: int, starts: np.ndarray,
           side: int) -> np.ndarray:
    """gain_j of the given (pair, block) cells, int64: S0 less the smallest SSD over the shifts."""
    nb = len(starts)
    y0, x0 = starts[block // nb] + shift, starts[block % nb] + shift
    span = np.arange(-shift, side + shift)
    rows, cols = (y0[:, None] + span)[:, :, None], (x0[:, None] + span)[:, None, :]
    win_a = a[pair[:, None, None], rows, cols].astype(np.int32)  # (c, side + 2R, side + 2R, 3)
    win_b = b[pair[:, None, None], rows, cols].astype(np.int32)
    here = win_a[:, shift:shift + side, shift:shift + side]

    def ssd(dy: int, dx: int) -> np.ndarray:
        d = here - win_b[:, shift + dy:shift + dy + side, shift + dx:shift + dx + side]
        return np.einsum("kijc,kijc->k", d, d, dtype=np.int64)

    smin = np.min([ssd(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1) if dy or dx],
                  axis=0)
    return ssd(0, 0) - smin


def moved(a: np.ndarray, b: np.ndarray, ssd: np.ndarray) -> np.ndarray:
    """Which pairs moved (module docstring): a, b (k, px, px, 3) uint8, b in the pair's orientation;
    ``ssd`` (k,) their whole SSD. Shifts are tried only in blocks whose S0 passes both bars (the gain
    is at most S0): most pairs of copies have none."""
    k = len(a)
    out = np.zeros(k, dtype=bool)
    if k == 0:
        return out
    px = a.shape[1]
    shift, side, starts = geometry(px)
    if len(starts) == 0:
        return out
    n_block, n_all = side * side, px * px
    ssd = np.asarray(ssd, np.int64)

    def passes(values: np.ndarray, whole: np.ndarray) -> np.ndarray:  # both bars, in integers
        big = values * FLOOR.denominator >= FLOOR.numerator * n_block
        return big & (values * (n_all * RATIO.denominator) >= (RATIO.numerator * n_block) * whole)

    for lo in range(0, k, CHUNK):
        s0 = _in_place(a[lo:lo + CHUNK], b[lo:lo + CHUNK], shift, starts, side)
        median = np.partition(s0, len(s0[0]) // 2, axis=1)[:, len(s0[0]) // 2:len(s0[0]) // 2 + 1]
        pair, block = np.nonzero(passes(s0, ssd[lo:lo + CHUNK, None]) & (s0 >= LOCAL * median))
        if len(pair) == 0:
            continue
        gain = _gains(a[lo:lo + CHUNK], b[lo:lo + CHUNK], pair, block, shift, starts, side)
        out[lo + np.unique(pair[passes(gain, ssd[lo + pair])])] = True
    return out
