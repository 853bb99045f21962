"""The 'similar' preset's motion check applied to the pairs a search found, before they are recorded.

Flows in: pairs (image_a, image_b, pixel SSD, orientation) from any signal's pass. Flows out: a mask
of those to keep. A pair is set aside when its pixels are within the search's MSE threshold and part of
one picture is the other's shifted (``compare.motion``): two shots of a moving scene, not one picture.
Pixel pairs are checked as their tasks return them, and each other signal's once the pairs an earlier
signal recorded are taken out, so a full and an incremental search set the same pairs aside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from imgindex.compare import kernel, motion
from imgindex.db.queries import present_tensors

if TYPE_CHECKING:
    from sqlite_utils import Database

    from imgindex.compare.settings import Settings


class MotionVet:
    """Callable: which pairs to keep. Reads the pairs' tensors through ``db`` (the searching connection)."""

    def __init__(self, db: Database, px: int, threshold: float):
        self.db, self.px = db, px
        self.most = threshold * px * px * 3  # the pixel SSD within which a pair may be two shots
        self.moved: set[tuple[int, int]] = set()  # the pairs set aside, whichever signal found them
        self.seen: dict[tuple[int, int, int], bool] = {}  # (a, b, orientation) -> moved: a verdict is a function
        # of the two tensors and the orientation, so a pair another signal finds again is not checked again

    def __call__(self, image_a: np.ndarray, image_b: np.ndarray, ssd: np.ndarray, orient: np.ndarray) -> np.ndarray:
        keep = np.ones(len(image_a), dtype=bool)
        close = np.flatnonzero(np.asarray(ssd, np.float64) <= self.most)
        close = close[ssd[close] > 0]  # identical tensors never moved
        keys = list(zip(image_a[close].tolist(), image_b[close].tolist(), orient[close].tolist()))
        known = np.array([k in self.seen for k in keys], dtype=bool)
        keep[close[known]] = [not self.seen[k] for k, hit in zip(keys, known) if hit]
        if not known.all():
            self._check(image_a, image_b, ssd, orient, close[~known], keep)
        self.moved.update(zip(image_a[~keep].tolist(), image_b[~keep].tolist()))
        return keep

    def _check(self, image_a, image_b, ssd, orient, close: np.ndarray, keep: np.ndarray) -> None:
        """The check of the pairs ``close`` (rows), by orientation; ``keep`` and ``seen`` take the verdicts."""
        tensors = present_tensors(self.db, np.union1d(image_a[close], image_b[close]), self.px)
        have = np.array([int(image_a[i]) in tensors and int(image_b[i]) in tensors for i in close], dtype=bool)
        close = close[have]  # an image removed meanwhile: its pairs are dropped when written
        for o in np.unique(orient[close]).tolist():
            these = close[orient[close] == o]
            a = np.stack([tensors[int(i)] for i in image_a[these]])
            b = kernel.orient(np.stack([tensors[int(i)] for i in image_b[these]]), o)
            moved = motion.moved(a, b, ssd[these])
            keep[these[moved]] = False
            self.seen.update(zip(zip(image_a[these].tolist(), image_b[these].tolist(), [o] * len(these)),
                                 moved.tolist()))

    def kept(self, result: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """(image_a, image_b, ssd, orientation, ...) without the pairs set aside."""
        mask = self(*result[:4])
        return result if mask.all() else tuple(x[mask] for x in result)


def for_search(db: Database, settings: Settings) -> MotionVet | None:
    """The check a search with ``settings`` makes: None unless its preset has it (``Settings.motion``)."""
    return MotionVet(db, settings.px_size, settings.threshold) if settings.motion else None
