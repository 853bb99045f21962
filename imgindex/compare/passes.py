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
from imgindex.errors import ImgIndexError
from imgindex.compare import tone, tone_points, trimmed
from imgindex.compare.settings import Settings, signal_thresholds

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlite_utils import Database

    from imgindex.compare.plan import Scope


SIDE_BY_SIDE = 2_000  # images in scope from which the tone and rank passes run in two threads, side by side
# (numpy lets go of the GIL in their large steps). Worker processes, as from 50,000 before, take 0.3 s to
# start: 100,000 synthetic vectors, 'similar' 1.75-1.88x pixels alone in them, 1.64-1.67x in threads.
# Started before the pixel pass to overlap it too, they made 20,000 slower (1.39-1.80x against 1.26-1.61x)


class SideBySide:
    """The tone and rank passes, each in a thread of its own on a read-only connection of its own.
    Daemon threads: Ctrl-C does not wait for them."""

    def __init__(self, db_path: str, signals: list[str], args: tuple):
        self.found: dict[str, tone.ToneFound] = {}
        self.failed: list[tuple[str, BaseException]] = []
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
            self.failed.append((signal, exc))

    def result(self) -> dict[str, tone.ToneFound]:
        for thread in self.threads:
            thread.join()
        if self.failed:  # in one line, as a failed pixel worker is
            signal, exc = self.failed[0]
            if isinstance(exc, ImgIndexError):
                raise exc
            raise ImgIndexError(f"the {signal} search failed: {type(exc).__name__}: {exc}") from exc
        return self.found


def start(db: Database, db_path: str | None, settings: Settings, scope: Scope, is_new: np.ndarray, orientations,
          processes: int) -> SideBySide | None:
    """The tone and rank passes started now (``SideBySide``), when both are asked for and worth it; their
    keys made first, here, in the one connection that writes."""
    both = [s for s in ("tone", "rank") if s in settings.signals]
    if len(both) < 2 or db_path is None or processes < 2 or len(scope.ids) < SIDE_BY_SIDE:
        return None
    for signal in both:
        tone.ensure_keys(db, scope.ids, settings.px_size, rank=signal == "rank")
        if tone.few_new(is_new):  # the threads' read-only connections cannot fit the kept point index
            tone_points.ensure(db, signal == "rank", settings.px_size, _threshold(signal))
    args = (scope, is_new, scope.under_any(settings.reference), settings.px_size, orientations, settings.same_dim,
            settings.in_folder)
    return SideBySide(db_path, both, args)


def other_signals(db: Database, settings: Settings, scope: Scope, is_new: np.ndarray, orientations,
                  found_by_pixels: Callable[[tone.ToneFound], np.ndarray], *, db_path: str | None = None,
                  processes: int = 1, vet=None) -> tuple[dict[str, tone.ToneFound], int]:
    """(signal -> its pairs no earlier signal matched, images the trimmed signal could not look at:
    indexed before borders were looked for). With ``db_path``, ``processes`` > 1 and a scope of
    SIDE_BY_SIDE images or more, the tone and rank passes run side by side (``start``). ``vet``: the
    motion check (``compare.vetting``), on each signal's pairs that no earlier signal recorded."""
    reference = scope.under_any(settings.reference)
    side = start(db, db_path, settings, scope, is_new, orientations, processes)
    done = side.result() if side is not None else {}
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
        if vet is not None and len(pairs):  # after: the pairs kept before it are recorded whatever it says
            pairs = pairs.take(vet(pairs.image_a, pairs.image_b, pairs.ssd, pairs.orient))
        out[signal] = pairs
    return out, unchecked


def _threshold(signal: str) -> float:
    return signal_thresholds((signal,))[signal]


def pass_batch(conn, signals: list[str], scope, is_new, reference, px_size, orientations, same_dim, in_folder):
    """The passes of ``signals`` on a read-only connection (in a thread of ``SideBySide``)."""
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
