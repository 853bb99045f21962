"""The passes of a search's signals besides pixels (``tone``, ``rank``, ``trimmed``), after the pixel pass.

Flows in: the search's settings, scope and which images are new, and a way to tell the pairs the
pixel pass already found. Flows out: each signal's pairs that no earlier signal (in SIGNALS order)
matched, so a pair is recorded once, with the first signal that matches it.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.connect import connect_readonly
from imgindex.compare import tone, trimmed
from imgindex.compare.settings import Settings, signal_thresholds

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlite_utils import Database

    from imgindex.compare.plan import Scope


SIDE_BY_SIDE = 2_000  # images in scope from which the tone and rank passes run in two threads, side by side
# (numpy lets go of the GIL in their large steps; a worker process would take 0.3 s to start)
OVERLAP_MOST = 200_000  # images up to which they start before the pixel pass and overlap it too: 100,000
# synthetic vectors, 'similar' 1.93x -> 1.58x pixels alone. Beyond, the memory of the three would add up


class Ahead:
    """The tone and rank passes, each in a thread of its own on a read-only connection of its own,
    started before the pixel pass. Daemon threads: Ctrl-C does not wait for them."""

    def __init__(self, db_path: str, signals: list[str], args: tuple):
        self.found: dict[str, tone.ToneFound] = {}
        self.failed: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(db_path, signal, args), daemon=True,
                                         name=f"imgindex-{signal}-pass") for signal in signals]
        for thread in self.threads:
            thread.start()

    def _run(self, db_path: str, signal: str, args: tuple) -> None:
        try:
            conn = connect_readonly(db_path)
            try:
                self.found[signal] = pass_batch(conn, [signal], *args)[0]
            finally:
                conn.close()
        except BaseException as exc:  # raised in the searching thread, by result()
            self.failed.append(exc)

    def result(self) -> dict[str, tone.ToneFound]:
        for thread in self.threads:
            thread.join()
        if self.failed:
            raise self.failed[0]
        return self.found


def start(db: Database, db_path: str | None, settings: Settings, scope: Scope, is_new: np.ndarray, orientations,
          processes: int, *, before_pixels: bool = False) -> Ahead | None:
    """The tone and rank passes started now (``Ahead``), when both are asked for and worth it (and,
    ``before_pixels``, when the scope is small enough to overlap the pixel pass); their keys made
    first, here, in the one connection that writes."""
    both = [s for s in ("tone", "rank") if s in settings.signals]
    if len(both) < 2 or db_path is None or processes < 2 or len(scope.ids) < SIDE_BY_SIDE:
        return None
    if before_pixels and len(scope.ids) > OVERLAP_MOST:
        return None
    for signal in both:
        tone.ensure_keys(db, scope.ids, settings.px_size, rank=signal == "rank")
    args = (scope, is_new, scope.under_any(settings.reference), settings.px_size, orientations, settings.same_dim,
            settings.in_folder)
    return Ahead(db_path, both, args)


def other_signals(db: Database, settings: Settings, scope: Scope, is_new: np.ndarray, orientations,
                  found_by_pixels: Callable[[tone.ToneFound], np.ndarray], *, ahead: Ahead | None = None,
                  db_path: str | None = None, processes: int = 1) -> tuple[dict[str, tone.ToneFound], int]:
    """(signal -> its pairs no earlier signal matched, images the trimmed signal could not look at:
    indexed before borders were looked for). ``ahead``: the tone and rank passes started before the
    pixel pass (``start``), else started now if worth it; the others run here."""
    reference = scope.under_any(settings.reference)
    ahead = ahead or start(db, db_path, settings, scope, is_new, orientations, processes)
    done = ahead.result() if ahead is not None else {}
    out: dict[str, tone.ToneFound] = {}
    unchecked = 0
    for signal in settings.signals:
        if signal in done:
            pairs = done[signal]
        elif signal in ("tone", "rank"):
            pairs = tone.search(db, scope, is_new, reference, settings.px_size, _threshold(signal), orientations,
                                same_dim=settings.same_dim, in_folder=settings.in_folder, rank=signal == "rank")
        elif signal == "trimmed":
            unchecked = trimmed.unchecked(db, scope.ids)
            pairs = trimmed.search(db, scope, is_new, reference, settings.px_size, _threshold(signal), orientations,
                                   same_dim=settings.same_dim, in_folder=settings.in_folder)
        else:
            continue
        pairs = pairs.take(~found_by_pixels(pairs))
        for earlier in out.values():
            pairs = pairs.take(~among(pairs, (earlier.image_a, earlier.image_b)))
        out[signal] = pairs
    return out, unchecked


def _threshold(signal: str) -> float:
    return signal_thresholds((signal,))[signal]


def pass_batch(conn, signals: list[str], scope, is_new, reference, px_size, orientations, same_dim, in_folder):
    """The passes of ``signals`` on a read-only connection (in a thread of ``Ahead``)."""
    return [tone.search(conn, scope, is_new, reference, px_size, _threshold(s), orientations, same_dim=same_dim,
                        in_folder=in_folder, rank=s == "rank", make_keys=False) for s in signals]


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
