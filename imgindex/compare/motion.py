"""Pure numpy: the motion check, which tells two shots of a moving scene from two copies of one picture.
No I/O, deterministic, exact in integers.

A subject that moved a little between two shots leaves their tensors close (pixel MSE of a re-encode
or less, when the subject is small or smooth), but the part that moved is the other's *shifted*: in
the blocks it covers, the other picture moved by a pixel or two matches better than in place. Edits
and re-encodes do not move anything: noise, blur, resampling and colour change leave each block
best compared in place, but for chance gains as small as their noise, and they raise every block
alike where what moved is local.

Definitions (the README states them for users). Tensors a and b (px x px x 3, b already in the pair's
orientation); R = max(1, round(px / 25)) pixels of shift. Each scale of SCALES lays blocks of
B = max(2, round(px / divisor)) pixels a side every B // 2 pixels over the inner (px - 2R) x (px - 2R)
pixels (and one more at the far edge), so every shift stays inside the tensor. For each block j:

- ``S0_j``: the sum of squared differences of a and b over the block, all three channels;
- ``Smin_j``: the smallest such sum between a's block and b's block moved by (dy, dx), over the
  (2R + 1)^2 - 1 shifts with |dy|, |dx| <= R other than none;
- ``gain_j = S0_j - Smin_j``; the median block: the (m // 2 + 1)-th smallest S0 of the m blocks.

A pair *moved* when, at some scale, some block has ``gain_j >= floor * B^2`` (the shift explains at
least ``floor`` per pixel of the block), ``gain_j * px^2 >= ratio * B^2 * SSD`` (``ratio`` times the
pair's mean squared difference per pixel; SSD: the pair's whole SSD in that orientation) and
``S0_j >= local * S0`` of the median block. All integers (the bars are fractions), so the check is
exact. Since ``gain_j <= S0_j <= SSD``, identical tensors never moved. Small blocks find small
subjects that move within a large block too little; their noise is larger, and so are their bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Scale:
    """One size of block and its three bars (module docstring)."""

    divisor: int  # B = px / divisor
    floor: Fraction  # per pixel, squared differences summed over the three channels (0-255 scale)
    ratio: Fraction  # times the pair's mean, per pixel, over the three channels
    local: int  # times the median block's S0


# calibrated: benchmarks/accuracy.py and README ("The motion check"); the version goes with searches.signals
SCALES = (Scale(5, Fraction(3), Fraction(4, 5), 4), Scale(10, Fraction(12), Fraction(4), 8))
VERSION = 1  # of these definitions: a search made with another is not built on
CHUNK = 256  # pairs at a time: (CHUNK, px, px) int32 arrays


def geometry(px: int, divisor: int) -> tuple[int, int, np.ndarray]:
    """(R, B, the blocks' first rows and columns within the inner part)."""
    shift = max(1, round(px / 25))
    side = max(2, round(px / divisor))
    inner = px - 2 * shift
    if inner < side:
        return shift, side, np.zeros(0, np.int64)
    starts = list(range(0, inner - side + 1, max(1, side // 2)))
    if starts[-1] != inner - side:
        starts.append(inner - side)
    return shift, side, np.array(starts, np.int64)


def _integral(a: np.ndarray, b: np.ndarray, shift: int) -> np.ndarray:
    """(k, m + 1, m + 1) int64: the integral image of the squared differences (three channels) over the
    inner m x m pixels, from which every block's S0 is four lookups."""
    px = a.shape[1]
    d = a[:, shift:px - shift, shift:px - shift].astype(np.int32) - b[:, shift:px - shift, shift:px - shift]
    c = np.zeros((len(a), px - 2 * shift + 1, px - 2 * shift + 1), np.int64)
    np.cumsum(np.cumsum(np.einsum("kijc,kijc->kij", d, d), axis=1, dtype=np.int64), axis=2, out=c[:, 1:, 1:])
    return c


def _in_place(c: np.ndarray, starts: np.ndarray, side: int) -> np.ndarray:
    """(k, blocks) int64: each block's S0, from ``_integral``."""
    y0, x0 = starts[:, None], starts[None, :]
    y1, x1 = y0 + side, x0 + side
    return (c[:, y1, x1] - c[:, y0, x1] - c[:, y1, x0] + c[:, y0, x0]).reshape(len(c), -1)


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
    ``ssd`` (k,) their whole SSD."""
    out = np.zeros(len(a), dtype=bool)
    if len(a) == 0:
        return out
    ssd = np.asarray(ssd, np.int64)
    shift = geometry(a.shape[1], SCALES[0].divisor)[0]  # the same at every scale
    for lo in range(0, len(a), CHUNK):
        c = _integral(a[lo:lo + CHUNK], b[lo:lo + CHUNK], shift)
        for scale in SCALES:
            left = np.flatnonzero(~out[lo:lo + CHUNK])  # a pair found moved is not looked at again
            if len(left):
                out[lo + left] = _moved_at(a[lo + left], b[lo + left], c[left], ssd[lo + left], scale)
    return out


def _moved_at(a: np.ndarray, b: np.ndarray, c: np.ndarray, ssd: np.ndarray, scale: Scale) -> np.ndarray:
    """``moved`` at one scale (``c``: the pairs' ``_integral``). Shifts are tried only in blocks whose S0
    passes the three bars (the gain is at most S0): most pairs of copies have none."""
    out = np.zeros(len(a), dtype=bool)
    px = a.shape[1]
    shift, side, starts = geometry(px, scale.divisor)
    if len(starts) == 0:
        return out
    n_block, n_all = side * side, px * px

    def passes(values: np.ndarray, whole: np.ndarray) -> np.ndarray:  # floor and ratio, in integers
        most = max(scale.floor.numerator, scale.floor.denominator, scale.ratio.numerator, scale.ratio.denominator)
        if most * n_all * max(int(np.max(values, initial=0)), int(np.max(whole, initial=0)), n_block) >= 2**62:
            values, whole = values.astype(object), whole.astype(object)  # bars of large terms: Python integers
        big = values * scale.floor.denominator >= scale.floor.numerator * n_block
        return big & (values * (n_all * scale.ratio.denominator) >= (scale.ratio.numerator * n_block) * whole)

    s0 = _in_place(c, starts, side)
    middle = s0.shape[1] // 2
    median = np.partition(s0, middle, axis=1)[:, middle:middle + 1]
    pair, block = np.nonzero(passes(s0, ssd[:, None]) & (s0 >= scale.local * median))
    if len(pair):
        gain = _gains(a, b, pair, block, shift, starts, side)
        out[np.unique(pair[passes(gain, ssd[pair])])] = True
    return out
