"""The passes of a search's signals besides pixels (``tone``, ``rank``, ``trimmed``), after the pixel pass.

Flows in: the search's settings, scope and which images are new, and a way to tell the pairs the
pixel pass already found. Flows out: each signal's pairs that no earlier signal (in SIGNALS order)
matched, so a pair is recorded once, with the first signal that matches it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from imgindex.compare import tone, trimmed
from imgindex.compare.settings import RANK_THRESHOLD, TONE_THRESHOLD, TRIMMED_THRESHOLD, Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlite_utils import Database

    from imgindex.compare.plan import Scope


def other_signals(db: Database, settings: Settings, scope: Scope, is_new: np.ndarray, orientations,
                  found_by_pixels: Callable[[tone.ToneFound], np.ndarray]) -> tuple[dict[str, tone.ToneFound], int]:
    """(signal -> its pairs no earlier signal matched, images the trimmed signal could not look at:
    indexed before borders were looked for)."""
    reference = scope.under_any(settings.reference)
    out: dict[str, tone.ToneFound] = {}
    unchecked = 0
    for signal in settings.signals:
        if signal in ("tone", "rank"):
            pairs = tone.search(db, scope, is_new, reference, settings.px_size,
                                RANK_THRESHOLD if signal == "rank" else TONE_THRESHOLD, orientations,
                                same_dim=settings.same_dim, in_folder=settings.in_folder, rank=signal == "rank")
        elif signal == "trimmed":
            unchecked = trimmed.unchecked(db, scope.ids)
            pairs = trimmed.search(db, scope, is_new, reference, settings.px_size, TRIMMED_THRESHOLD, orientations,
                                   same_dim=settings.same_dim, in_folder=settings.in_folder)
        else:
            continue
        pairs = pairs.take(~found_by_pixels(pairs))
        for earlier in out.values():
            pairs = pairs.take(~among(pairs, (earlier.image_a, earlier.image_b)))
        out[signal] = pairs
    return out, unchecked


def among(pairs: tone.ToneFound, earlier: tuple[np.ndarray, ...]) -> np.ndarray:
    """Which of ``pairs`` are among the ``earlier`` ones (image_a, image_b, ...)."""
    top = int(max(np.max(earlier[1], initial=0), np.max(pairs.image_b, initial=0))) + 1
    return np.isin(pairs.image_a * top + pairs.image_b, earlier[0] * top + earlier[1])


def written(db: Database, search_id: int, pairs: tone.ToneFound) -> np.ndarray:
    """Which of ``pairs`` a full search (its own chain) already wrote: the pixel pass's."""
    if len(pairs) == 0:
        return np.zeros(0, dtype=bool)
    listed = json.dumps([[a, b] for a, b in zip(pairs.image_a.tolist(), pairs.image_b.tolist())])
    have = set(db.execute(
        "SELECT image_a, image_b FROM pair_rows WHERE pair_set = ? AND found_in = ? AND (image_a, image_b) IN"
        " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
        [search_id, search_id, listed]).fetchall())
    return np.array([(a, b) in have for a, b in zip(pairs.image_a.tolist(), pairs.image_b.tolist())], dtype=bool)
