"""Uniform borders around a picture (letterbox and pillarbox bars, mats): where the picture
inside them is, to a fraction of a pixel, for the ``trimmed`` signal.

Flows in: a decoded Pillow image (at the scale it was decoded, and the box of it that is the
picture). Flows out: the region inside its borders, or None. ``TRIM`` names how borders are
found: trimmed tensors made another way are never mixed with these.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

TRIM = "trim-v1"  # how borders are found (``content_box``): trimmed tensors of another recipe are never mixed
TRIM_TOLERANCE = 12  # luminance levels a border line's pixels may be from the border's colour
TRIM_SHARE = 0.98  # of a border line's pixels that must be that close (JPEG ringing, a stray speck)
TRIM_MIN = 0.03  # a border thinner than this share of its side is left alone
TRIM_KEEP = 0.5  # and nothing is trimmed when less than half of a side would remain


def content_box(im: Image.Image, box=None) -> tuple[float, float, float, float] | None:
    """The region of ``im`` (within ``box``, the part of a drafted JPEG that is the picture) inside
    uniform borders, or None when it has none worth trimming: each side's run of lines whose
    pixels (TRIM_SHARE of them) are within TRIM_TOLERANCE of that side's outermost line, if the run
    is at least TRIM_MIN of the side and at least TRIM_KEEP of the side remains. Pictures with
    transparency are left alone (their borders may be see-through)."""
    if im.mode not in ("L", "RGB"):
        return None
    box = (0, 0, im.width, im.height) if box is None else box
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if y1 - y0 < 8 or x1 - x0 < 8 or not _edge_uniform(im, x0, y0, x1, y1):
        return None
    lum = np.asarray(im if im.mode == "L" else im.convert("L"), dtype=np.int16)[y0:y1, x0:x1]
    h, w = lum.shape
    top, bottom = _border(lum, h), _border(lum[::-1], h)
    left, right = _border(lum.T, w), _border(lum.T[::-1], w)
    if not (top or bottom or left or right) or h - top - bottom < TRIM_KEEP * h or w - left - right < TRIM_KEEP * w:
        return None
    # a side without a border keeps the box's own edge (a drafted JPEG's is fractional)
    return (x0 + left if left else box[0], y0 + top if top else box[1], x1 - right if right else box[2],
            y1 - bottom if bottom else box[3])


def _edge_uniform(im: Image.Image, x0: int, y0: int, x1: int, y1: int) -> bool:
    """Whether some outermost line could start a border: most pictures have none, and are told so
    from their four edge lines alone, without the luminance of the whole picture."""
    for strip in ((x0, y0, x1, y0 + 1), (x0, y1 - 1, x1, y1), (x0, y0, x0 + 1, y1), (x1 - 1, y0, x1, y1)):
        line = np.asarray(im.crop(strip).convert("L"), dtype=np.int16).ravel()
        if (np.abs(line - int(np.median(line))) <= TRIM_TOLERANCE).mean() >= TRIM_SHARE:
            return True
    return False


def _border(lines: np.ndarray, side: int) -> float:
    """How far (in lines, from the outside in) the first line's colour reaches; 0 below TRIM_MIN.

    The line where the border ends is usually a blend of border and picture (the border rarely
    ends on a pixel edge of a scaled decode): the share of border in it is estimated from the
    line after it, so the picture is cut out to a fraction of a pixel."""
    colour = int(np.median(lines[0]))
    close = (np.abs(lines - colour) <= TRIM_TOLERANCE).mean(axis=1) >= TRIM_SHARE
    run = int(np.argmin(close)) if not close.all() else len(close)
    if run < TRIM_MIN * side or run + 1 >= len(lines):
        return 0
    blend, inner = lines[run].astype(np.float64), lines[run + 1].astype(np.float64)
    telling = np.abs(inner - colour) > 2 * TRIM_TOLERANCE
    share = float(np.median((inner[telling] - blend[telling]) / (inner[telling] - colour))) if telling.sum() >= 8 else 0.5
    return run + min(max(share, 0.0), 1.0)


def inner_size(inside, box, size: tuple[int, int]) -> tuple[int, int]:
    """The size in the file's pixels of ``inside`` (in the coordinates of ``box``, the whole picture)."""
    return (int(round((inside[2] - inside[0]) / (box[2] - box[0]) * size[0])),
            int(round((inside[3] - inside[1]) / (box[3] - box[1]) * size[1])))
