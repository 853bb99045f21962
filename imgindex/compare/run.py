"""One search: settings -> scope -> plan -> execute -> persist, and its row in ``searches``.

Incremental: a search with the same settings as the latest one compares only the images added
(or moved) since against all, and shares the earlier pairs and groups that nothing changed
(``persist``); a few new images find their neighbours through the point index (``few``).
``full=True`` recomputes everything. ``near_pairs`` runs a search's plan at a wider threshold
and writes nothing (the report's view past the threshold).
"""

from __future__ import annotations

import dataclasses
import os
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from imgindex.cluster.connect import executor, open_cluster
from imgindex.db import decisions
from imgindex.db.connect import abandon_transaction, write_transaction
from imgindex.db.queries import latest_scan_roots, px_size as stored_px_size
from imgindex.db.runs import now, start_run, timings_json, update_run
from imgindex.errors import ImgIndexError
from imgindex.compare import kernel, passes, points, profile, tone, vetting
from imgindex.compare import signals as signals_
from imgindex.compare.execute import PairCollector, PairWriter, run_tasks
from imgindex.compare.few import few_tasks
from imgindex.compare.nearby import Scratch
from imgindex.compare.persist import add_pairs, count_groups, count_pairs, hide_pairs, set_aside_count, write_groups
from imgindex.compare.regroup import policy_of
from imgindex.compare.plan import (CLASSIC_MAX, default_chunksize, load_scope, max_image_id, moved_since, new_images,
                                   new_mask, plan, scope_size)
from imgindex.compare.settings import (Settings, base_search, has_motion_check, resolve_similarity, signal_thresholds,
                                       still_head, stored_settings)
from imgindex.compare.update import update_groups
from imgindex.types import SearchProgress, SearchReport, SearchTimings
from imgindex.workers import resolve_processes

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlite_utils import Database


def search(
    db: Database,
    db_path: str,
    *,
    similarity: str | float | None = None,
    rotate: bool | None = None,
    mirror: bool | None = None,
    same_dim: bool | None = None,
    keep: str | tuple[str, ...] | None = None,
    prefer_folders: tuple[str, ...] | None = None,
    in_folder: bool = False,
    roots: tuple[str, ...] = (),
    processes: int | None = None,
    chunksize: int | None = None,
    full: bool = False,
    save_profile: bool = False,
    progress: Callable[[SearchProgress], None] | None = None,
    algorithm: str | None = None,
    scheduler=None,
    signals: str | tuple[str, ...] | None = None,
) -> SearchReport:
    """Find every pair of indexed images with MSE <= the threshold; record pairs and groups.

    Settings not given come from the index's profile (``compare.profile``). ``algorithm``
    forces 'classic' or 'chunked' (default: classic up to CLASSIC_MAX images). ``scheduler``:
    compare on a Dask cluster (``imgindex.cluster.connect``); None, the local worker pool.
    ``signals``: 'pixels' (MSE), 'tone' (``compare.signals``) or both; None, the preset's.
    """
    started = time.monotonic()
    chosen, off_profile = profile.resolve(db, profile.given(similarity, rotate, mirror, same_dim, keep, prefer_folders,
                                                            signals), save_profile=save_profile)
    name, threshold = resolve_similarity(chosen.similarity)
    processes = resolve_processes(processes)
    if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
        raise ImgIndexError(f"chunksize must be a whole number >= 1 (got {chunksize!r}).")
    if algorithm not in (None, "classic", "chunked"):
        raise ImgIndexError(f"algorithm must be 'classic' or 'chunked' (got {algorithm!r}).")
    roots = tuple(os.path.abspath(r) for r in roots)
    if in_folder and not roots:
        roots = latest_scan_roots(db)
    if in_folder and not roots:
        raise ImgIndexError("in_folder searches each scanned folder on its own: scan some folders first.")
    px = stored_px_size(db) or 0
    given = chosen.signals is not None
    usable = _usable(chosen.chosen_signals, px, given=given)
    left_out = () if given else _too_many(usable, scope_size(db, roots))
    settings = Settings(name, threshold, chosen.rotate, chosen.mirror, chosen.same_dim, in_folder, roots, px,
                        decisions.reference_folders(db), chosen.keep, chosen.prefer_folders,
                        tuple(s for s in usable if s not in left_out), has_motion_check(name))
    base = None if full else base_search(db, settings)
    # an exact-duplicate search is linear (identical keys): far too little work for workers below tens
    # of millions of images, so a local cluster starts only if asked for; else while the search plans
    with open_cluster(scheduler, workers=processes, eager=threshold > 0) as cluster:
        row = {"status": "running", **settings.as_row(), "processes": processes, "executor": executor(cluster, processes)}
        report = _attempts(db, db_path, settings, base, row, processes, chunksize, algorithm, progress, started,
                           off_profile, cluster)
        return dataclasses.replace(report, left_out=left_out)


SIGNALS_MOST = 200_000  # images in a search above which the preset leaves tone and rank out (README)


def _too_many(signals: tuple[str, ...], images: int) -> tuple[str, ...]:
    """The preset's signals a search of ``images`` leaves out: tone and rank, whose range searches
    grow with the square of the density of their points (a million images: 520 s and 7 GB, where
    pixels alone takes about 70 s), above SIGNALS_MOST. Asked for by name, they run anyway."""
    return tuple(s for s in signals if s in ("tone", "rank")) if images > SIGNALS_MOST else ()


def _usable(signals: tuple[str, ...], px: int, *, given: bool) -> tuple[str, ...]:
    """The signals a search can use on tensors of ``px``: those asked for (an error when one cannot),
    or of the preset's, those that can (tone and trimmed up to 128 px, rank up to 100)."""
    most = {"tone": signals_.MAX_PX, "trimmed": signals_.MAX_PX, "rank": signals_.RANK_MAX_PX}
    too_large = [s for s in signals if px > most.get(s, px)]
    if too_large and given:
        raise ImgIndexError(f"the {', '.join(too_large)} signal works on tensors of at most"
                            f" {min(most[s] for s in too_large)} px, and this index has {px}: search with"
                            " --signals pixels, or index again with a smaller --px-size.")
    return tuple(s for s in signals if s not in too_large)


def _attempts(db, db_path, settings, base, row, processes, chunksize, algorithm, progress, started, off_profile,
              cluster) -> SearchReport:
    """The search, started again on a newer base while another search of its chain finishes first."""
    search_id = start_run(db, "searches", {"started_at": now(), **row})
    try:
        for _attempt in range(ATTEMPTS):
            run = _Run(db, db_path, search_id, settings, base, processes, chunksize, algorithm, progress, started,
                       cluster)
            report = run.incremental() if base is not None else run.full()
            if report is not None:
                return dataclasses.replace(report, off_profile=off_profile)
            # another search of the chain finished first: build on it, as a search started after it
            # (a chain's searches finish in the order of their ids, which the shared rows rely on)
            base = base_search(db, settings)
            with write_transaction(db):
                db.execute("DELETE FROM searches WHERE id = ?", [search_id])
                search_id = start_run(db, "searches", {"started_at": now(), **row})
        raise ImgIndexError("Other searches of this index kept finishing while this one ran; run it again"
                            " (or stop the watcher first).")
    except BaseException as exc:
        abandon_transaction(db)
        _finish(db, search_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", started)
        raise


ATTEMPTS = 3


@contextmanager
def _timed(spent: dict[str, float], step: str):
    """The wall time of the block, added to ``spent[step]``."""
    started = time.monotonic()
    try:
        yield
    finally:
        spent[step] += time.monotonic() - started


FEW_NEW = 5000  # new images searched through the point index (one box query each) instead of a plan of all


class _Run:
    """One attempt at a search: full (a chain of its own) or incremental (on ``base``)."""

    def __init__(self, db, db_path, search_id, settings, base, processes, chunksize, algorithm, progress, started,
                 cluster=None):
        self.db, self.db_path, self.search_id, self.settings, self.base = db, db_path, search_id, settings, base
        self.cluster = cluster
        self.processes, self.chunksize, self.algorithm = processes, chunksize, algorithm
        self.progress, self.started = progress, started
        self.px = settings.px_size
        self.orientations = kernel.orientation_indices(settings.rotate, settings.mirror)
        self.version = decisions.version(db)
        self.policy = policy_of(db, settings)
        self.roots = settings.roots if settings.in_folder else ()
        self.by_signal: dict[str, int] = {}  # new pairs matched by each signal besides pixels, and no earlier one
        self.unchecked = 0  # images in scope indexed before borders were looked for (the trimmed signal)
        self.spent = dict.fromkeys(("pixels", "signals", "groups"), 0.0)  # seconds (``SearchTimings``)
        self.vet = vetting.for_search(db, settings)  # None: no motion check

    def _record(self, algorithm: str, chunksize: int, n: int) -> None:
        update_run(self.db, "searches", self.search_id, {
            "algorithm": algorithm, "chunksize": chunksize, "images": n,
            "base_search_id": self.base.search_id if self.base else None,
            "pair_set": self.base.pair_set if self.base else self.search_id})

    def _algorithm(self, n: int) -> tuple[str, int]:
        algorithm = self.algorithm or ("classic" if n <= CLASSIC_MAX else "chunked")
        return algorithm, self.chunksize or default_chunksize(n, algorithm, self.processes)

    def _compare(self, scope, is_new, algorithm, chunksize, writer) -> tuple[int, int]:
        if "pixels" not in self.settings.signals:
            return 0, 0
        with Scratch() as scratch:
            tasks = list(plan(self.db, scope, is_new, self.px, self.settings.threshold, self.settings.same_dim,
                              self.settings.in_folder, chunksize, algorithm,
                              scope.under_any(self.settings.reference), scratch))
            return run_tasks(self.db, self.db_path, tasks, writer, threshold=self.settings.threshold,
                             orientations=self.orientations, px_size=self.px, processes=self.processes,
                             algorithm=algorithm, progress=self.progress, started=self.started, cluster=self.cluster)

    def full(self) -> SearchReport:
        """Every pair of the scope, in a chain of its own: pairs written as found, then every group."""
        scope = load_scope(self.db, self.settings.roots, self.settings.in_folder)
        n = len(scope.ids)
        algorithm, chunksize = self._algorithm(n)
        self._record(algorithm, chunksize, n)
        writer = PairWriter(self.db, self.search_id, self.search_id, self.px * self.px * 3, vet=self.vet)
        with _timed(self.spent, "pixels"):
            found, workers = self._compare(scope, np.ones(n, dtype=bool), algorithm, chunksize, writer)
        with _timed(self.spent, "signals"):
            extra = self._others(scope, np.ones(n, dtype=bool), self._written)
            for signal, pairs in extra.items():
                found += writer.add((pairs.image_a, pairs.image_b, pairs.ssd, pairs.orient), signal, pairs.score)
            writer.flush()
        with _timed(self.spent, "groups"):
            if algorithm == "chunked":
                points.ensure(self.db, self.px)  # for the incremental searches to come (once)
            n_groups, set_aside = write_groups(self.db, self.search_id, self.roots, self.px, self.orientations,
                                               self.policy)
        return self._done(n, n, found, found - set_aside, n_groups, set_aside, workers, int(scope.ids.max(initial=0)),
                          algorithm)

    def _others(self, scope, is_new, found_by_pixels) -> dict[str, tone.ToneFound]:
        """The other signals' pairs (``passes``), and what they tell the report."""
        found, self.unchecked = passes.other_signals(self.db, self.settings, scope, is_new, self.orientations,
                                                     found_by_pixels, db_path=self.db_path, processes=self.processes,
                                                     vet=self.vet)
        self.by_signal = {k: len(v) for k, v in found.items()}
        return found

    def _written(self, pairs: tone.ToneFound) -> np.ndarray:
        return passes.written(self.db, self.search_id, pairs)

    def incremental(self) -> SearchReport | None:
        """The images added or moved since the base against all; then, in one transaction that first
        checks the base is still the chain's last, the changed rows only. None: the base moved."""
        base, settings = self.base, self.settings
        few = None if base.reference != settings.reference else new_images(self.db, base, settings.roots, FEW_NEW)
        if few is not None:
            n = scope_size(self.db, settings.roots)
            algorithm, chunksize = self._algorithm(n)
        if few is not None and algorithm == "chunked":
            self._record(algorithm, chunksize, n)
            collector = PairCollector(self.px * self.px * 3, vet=self.vet)
            with _timed(self.spent, "pixels"):
                _, workers = run_tasks(self.db, self.db_path, few_tasks(self.db, few.ids, self.px, settings),
                                       collector, threshold=settings.threshold, orientations=self.orientations,
                                       px_size=self.px, processes=self.processes, algorithm="chunked",
                                       progress=self.progress, started=self.started, cluster=self.cluster)
            new_count, max_id = len(few.ids), max_image_id(self.db)
            moved = moved_since(self.db, base)
            others = [s for s in settings.signals if s != "pixels"]
            scope = load_scope(self.db, settings.roots, settings.in_folder) if others else None
            is_new = new_mask(scope, base) if others else None
        else:
            scope = load_scope(self.db, settings.roots, settings.in_folder)
            n = len(scope.ids)
            algorithm, chunksize = self._algorithm(n)
            self._record(algorithm, chunksize, n)
            is_new = new_mask(scope, base)
            # folders no longer reference: their images were never compared with each other
            again = scope.under_any(tuple(set(base.reference) - set(settings.reference)))
            is_new |= again
            collector = PairCollector(self.px * self.px * 3, vet=self.vet)
            with _timed(self.spent, "pixels"):
                _, workers = self._compare(scope, is_new, algorithm, chunksize, collector)
            new_count, max_id = int(is_new.sum()), int(scope.ids.max(initial=0))
            moved = np.union1d(moved_since(self.db, base), scope.ids[again])
        pixels = collector.found()
        with _timed(self.spent, "signals"):
            extra = self._others(scope, is_new, lambda pairs: passes.among(pairs, pixels)) if scope is not None else {}
        both = tuple(np.concatenate([p, *(getattr(e, k) for e in extra.values())])
                     for p, k in zip(pixels, ("image_a", "image_b", "ssd", "orient")))
        with _timed(self.spent, "groups"), write_transaction(self.db):
            if not still_head(self.db, base):
                return None
            pair_set = base.pair_set
            hide_pairs(self.db, pair_set, self.search_id, moved)
            found = add_pairs(self.db, pair_set, self.search_id, pixels, self.px * self.px * 3, extra)
            a, b, _, _ = both
            touched = np.union1d(moved, np.union1d(a, b))
            if (base.decisions_version == self.version and base.keep_rule == settings.keep_rule
                    and base.reference == settings.reference):
                update_groups(self.db, self.search_id, both, moved, self.roots, self.px,
                              self.orientations, self.policy)
            else:  # decisions changed since: every group made again (unchanged ones keep their rows' values)
                write_groups(self.db, self.search_id, self.roots, self.px, self.orientations, self.policy,
                             base_id=base.search_id, changed=set(touched.tolist()))
            total = count_pairs(self.db, pair_set, self.search_id)
            set_aside = set_aside_count(self.db, self.search_id, self.policy)
            n_groups = count_groups(self.db, pair_set, self.search_id)
            return self._done(n, new_count, found, total - set_aside, n_groups, set_aside, workers, max_id, algorithm)

    def _done(self, n, new_count, found, pairs, n_groups, set_aside, workers, max_id, algorithm) -> SearchReport:
        report = SearchReport(
            search_id=self.search_id, similarity=self.settings.similarity, threshold=self.settings.threshold,
            algorithm=algorithm, incremental=self.base is not None,
            base_search_id=self.base.search_id if self.base else None, images=n, new_images=new_count,
            pairs=pairs, new_pairs=found, groups=n_groups, duration=time.monotonic() - self.started,
            workers=workers, executor=executor(self.cluster, self.processes), set_aside=set_aside, off_profile=(),
            signals=signal_thresholds(self.settings.signals, self.settings.threshold, self.settings.motion),
            by_signal=self.by_signal, unchecked=self.unchecked, moved=len(self.vet.moved) if self.vet else 0,
            timings=SearchTimings(total=time.monotonic() - self.started, **self.spent),
        )
        _finish(self.db, self.search_id, "completed", self.started, report, max_id, self.version)
        return report


def _finish(db: Database, search_id: int, status: str, started: float, report: SearchReport | None = None,
            max_image_id: int | None = None, version: int | None = None) -> None:
    """Counts and status in one update, so ``latest_search`` never shows a half-recorded run."""
    names = ("images", "new_images", "pairs", "groups", "set_aside")
    counts = {k: getattr(report, k) for k in names} if report else dict.fromkeys(names)
    if report is not None and report.timings is not None:
        counts["timings"] = timings_json(report.timings)
    counts["decisions_version"] = version
    update_run(db, "searches", search_id, {"status": status, "finished_at": now(),
                                           "duration": time.monotonic() - started, **counts,
                                           "max_image_id": max_image_id})


NEAR_SAMPLE = 2000  # images whose neighbours the report looks at past the threshold, in an index of more
NEAR_SAMPLE_OVER = 50_000  # than this (all of them below: one plan of the whole index at the wider threshold)


def near_pairs(db: Database, db_path: str, search_id: int, cap: float, *,
               processes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(ids looked at, image_a, image_b, mse, images in scope): every pair within MSE ``cap`` under a
    search's settings of each image looked at: all of them, or above NEAR_SAMPLE_OVER a random
    sample of NEAR_SAMPLE (seeded by the search), through the point index (a full plan at the wider
    threshold took 325 s and 2.4 GB at a million).

    Nothing is written: the report uses it to show each image's nearest neighbour beyond the
    threshold, which the pairs table (matches only) cannot tell.
    """
    settings = stored_settings(db, search_id)
    processes = resolve_processes(processes)  # reference folders: compared here too (the report's neighbours)
    px = stored_px_size(db) or 0
    scope = load_scope(db, settings.roots, settings.in_folder)
    n = len(scope.ids)
    algorithm = "classic" if n <= CLASSIC_MAX else "chunked"
    orientations = kernel.orientation_indices(settings.rotate, settings.mirror)
    collector = PairCollector(px * px * 3)
    if n > NEAR_SAMPLE_OVER:
        looked = np.sort(np.random.default_rng(search_id).choice(scope.ids, NEAR_SAMPLE, replace=False))
        wide = dataclasses.replace(settings, reference=())
        tasks = few_tasks(db, looked, px, wide)
        run_tasks(db, db_path, tasks, collector, threshold=cap, orientations=orientations, px_size=px,
                  processes=processes, algorithm="chunked", progress=None, started=time.monotonic())
        return (looked, *collector.pairs(), n)
    with Scratch() as scratch:
        tasks = list(plan(db, scope, np.ones(n, dtype=bool), px, cap, settings.same_dim, settings.in_folder,
                          default_chunksize(n, algorithm, processes), algorithm, scratch=scratch))
        run_tasks(db, db_path, tasks, collector, threshold=cap, orientations=orientations, px_size=px,
                  processes=processes, algorithm=algorithm, progress=None, started=time.monotonic())
    return (scope.ids, *collector.pairs(), n)
