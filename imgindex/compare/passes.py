"""The passes of a search's signals besides pixels (``tone``, ``rank``, ``trimmed``), after the pixel pass.

Flows in: the search's settings, scope and which images are new, and a way to tell the pairs the
pixel pass already found. Flows out: each signal's pairs that no earlier signal (in SIGNALS order)
matched, so a pair is recorded once, with the first signal that matches it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.connect import connect_readonly
from imgindex.errors import ImgIndexError
from imgindex.compare import tone, trimmed
from imgindex.compare.settings import Settings, signal_thresholds
from imgindex.workers import BatchRunner

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlite_utils import Database

    from imgindex.compare.plan import Scope


SIDE_BY_SIDE = 50_000  # images in scope from which the tone and rank passes run in two worker processes
IN_THREADS = 2_000  # images from which they run side by side in two threads below that (numpy lets go of the
# GIL in their large steps; a worker process takes 0.3 s to start)


def other_signals(db: Database, settings: Settings, scope: Scope, is_new: np.ndarray, orientations,
                  found_by_pixels: Callable[[tone.ToneFound], np.ndarray], *, db_path: str | None = None,
                  processes: int = 1) -> tuple[dict[str, tone.ToneFound], int]:
    """(signal -> its pairs no earlier signal matched, images the trimmed signal could not look at:
    indexed before borders were looked for). With ``db_path``, ``processes`` > 1 and a large scope,
    the tone and rank passes run side by side in worker processes (fresh interpreters, read-only)."""
    reference = scope.under_any(settings.reference)
    ahead = _side_by_side(db, db_path, settings, scope, is_new, reference, orientations, processes)
    out: dict[str, tone.ToneFound] = {}
    unchecked = 0
    for signal in settings.signals:
        if signal in ahead:
            pairs = ahead[signal]
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


def _side_by_side(db, db_path, settings, scope, is_new, reference, orientations, processes) -> dict:
    """The tone and rank passes side by side, each in a worker process (or a thread, below
    SIDE_BY_SIDE images), when both are asked for and worth it."""
    both = [s for s in ("tone", "rank") if s in settings.signals]
    if len(both) < 2 or db_path is None or processes < 2 or len(scope.ids) < IN_THREADS:
        return {}
    for signal in both:  # the keys are written here, the one process that writes
        tone.ensure_keys(db, scope.ids, settings.px_size, rank=signal == "rank")
    args = (scope, is_new, reference, settings.px_size, orientations, settings.same_dim, settings.in_folder)
    if len(scope.ids) < SIDE_BY_SIDE:
        return _in_threads(db_path, both, args)
    runner = BatchRunner(pass_batch, processes=2, args=args, context=db.conn, initializer=connect_readonly,
                         initargs=(db_path,), batch_work=1, fan_out_at=2)
    try:
        return dict(runner.map((signal, 1) for signal in both))
    except ImgIndexError:
        raise
    except Exception as exc:  # a worker that died, or failed: say which step, as the pixel pass does
        raise ImgIndexError(f"a {' or '.join(both)} search worker failed: {exc}") from exc


def _in_threads(db_path: str, signals: list[str], args: tuple) -> dict:
    """Each pass in a thread of its own, on a read-only connection of its own."""

    def one(signal: str):
        conn = connect_readonly(db_path)
        try:
            return pass_batch(conn, [signal], *args)[0]
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=len(signals), thread_name_prefix="imgindex-pass") as pool:
        futures = {signal: pool.submit(one, signal) for signal in signals}
        return {signal: future.result() for signal, future in futures.items()}


def pass_batch(conn, signals: list[str], scope, is_new, reference, px_size, orientations, same_dim, in_folder):
    """The passes of ``signals`` on a read-only connection (in a worker)."""
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
