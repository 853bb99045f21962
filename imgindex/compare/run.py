"""One search: settings -> scope -> plan -> execute -> persist, and its row in ``searches``.

Incremental: a search with the same settings as the latest one compares only the images added
(or moved) since against all, and carries the earlier pairs whose images are still there.
``full=True`` recomputes everything. ``near_pairs`` runs a search's plan at a wider threshold
and writes nothing (the report's view past the threshold).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db import decisions
from imgindex.db.connect import abandon_transaction
from imgindex.db.queries import latest_scan_roots, px_size as stored_px_size
from imgindex.db.runs import now, start_run, update_run
from imgindex.errors import ImgIndexError
from imgindex.compare import kernel, profile
from imgindex.compare.execute import PairCollector, PairWriter, run_tasks
from imgindex.compare.nearby import Scratch
from imgindex.compare.persist import carry, copy_groups, write_groups
from imgindex.compare.regroup import policy_of
from imgindex.compare.plan import CLASSIC_MAX, default_chunksize, load_scope, new_mask, plan
from imgindex.compare.settings import Settings, base_search, resolve_similarity, stored_settings
from imgindex.types import SearchProgress, SearchReport
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
) -> SearchReport:
    """Find every pair of indexed images with MSE <= the threshold; record pairs and groups.

    Settings not given come from the index's profile (``compare.profile``). ``algorithm``
    forces 'classic' or 'chunked' (default: classic up to CLASSIC_MAX images).
    """
    started = time.monotonic()
    chosen, off_profile = profile.resolve(db, profile.given(similarity, rotate, mirror, same_dim, keep, prefer_folders),
                                          save_profile=save_profile)
    name, threshold = resolve_similarity(chosen.similarity)
    processes = resolve_processes(processes)
    if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
        raise ImgIndexError(f"chunksize must be a whole number >= 1 (got {chunksize!r}).")
    roots = tuple(os.path.abspath(r) for r in roots)
    if in_folder and not roots:
        roots = latest_scan_roots(db)
    if in_folder and not roots:
        raise ImgIndexError("in_folder searches each scanned folder on its own: scan some folders first.")
    settings = Settings(name, threshold, chosen.rotate, chosen.mirror, chosen.same_dim, in_folder, roots,
                        stored_px_size(db) or 0, decisions.reference_folders(db), chosen.keep, chosen.prefer_folders)
    scope = load_scope(db, roots, in_folder)
    base = None if full else base_search(db, settings)
    is_new = new_mask(scope, base)
    if base is not None:  # folders no longer reference: their images were never compared with each other
        is_new |= scope.under_any(tuple(set(base.reference) - set(settings.reference)))
    n = len(scope.ids)
    algorithm = algorithm or ("classic" if n <= CLASSIC_MAX else "chunked")
    if algorithm not in ("classic", "chunked"):
        raise ImgIndexError(f"algorithm must be 'classic' or 'chunked' (got {algorithm!r}).")
    chunksize = chunksize or default_chunksize(n, algorithm, processes)
    search_id = start_run(db, "searches", {
        "started_at": now(), "status": "running", **settings.as_row(), "algorithm": algorithm,
        "processes": processes, "chunksize": chunksize, "base_search_id": base.search_id if base else None})
    try:
        px = settings.px_size
        orientations = kernel.orientation_indices(settings.rotate, settings.mirror)
        version = decisions.version(db)
        with Scratch() as scratch:
            tasks = list(plan(db, scope, is_new, px, threshold, settings.same_dim, in_folder, chunksize, algorithm,
                              scope.under_any(settings.reference), scratch))
            new_pairs, workers = run_tasks(db, db_path, tasks, PairWriter(db, search_id, px * px * 3),
                                           threshold=threshold, orientations=orientations, px_size=px,
                                           processes=processes, algorithm=algorithm, progress=progress,
                                           started=started)
        carried = carry(db, search_id, base.search_id, scope.ids[~is_new]) if base else 0
        if (base and new_pairs == 0 and carried == base.pairs and base.decisions_version == version
                and base.keep_rule == settings.keep_rule and base.reference == settings.reference):
            n_groups, set_aside = copy_groups(db, search_id, base.search_id)  # the same pairs: the same groups
        else:
            n_groups, set_aside = write_groups(db, search_id, roots if in_folder else (), px, orientations,
                                               policy_of(db, settings), base_id=base.search_id if base else None,
                                               changed=set(scope.ids[is_new].tolist()))
    except BaseException as exc:
        abandon_transaction(db)
        _finish(db, search_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", started)
        raise
    report = SearchReport(
        search_id=search_id, similarity=name, threshold=threshold, algorithm=algorithm, incremental=base is not None,
        base_search_id=base.search_id if base else None, images=n, new_images=int(is_new.sum()),
        pairs=new_pairs + carried - set_aside, new_pairs=new_pairs, groups=n_groups,
        duration=time.monotonic() - started, workers=workers, set_aside=set_aside, off_profile=off_profile,
    )
    _finish(db, search_id, "completed", started, report, int(scope.ids.max(initial=0)), version)
    return report


def _finish(db: Database, search_id: int, status: str, started: float, report: SearchReport | None = None,
            max_image_id: int | None = None, version: int | None = None) -> None:
    """Counts and status in one update, so ``latest_search`` never shows a half-recorded run."""
    names = ("images", "new_images", "pairs", "groups", "set_aside")
    counts = {k: getattr(report, k) for k in names} if report else dict.fromkeys(names)
    counts["decisions_version"] = version
    update_run(db, "searches", search_id, {"status": status, "finished_at": now(),
                                           "duration": time.monotonic() - started, **counts,
                                           "max_image_id": max_image_id})


def near_pairs(db: Database, db_path: str, search_id: int, cap: float, *,
               processes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(scope ids, image_a, image_b, mse) of every pair within MSE ``cap`` under a search's settings.

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
    with Scratch() as scratch:
        tasks = list(plan(db, scope, np.ones(n, dtype=bool), px, cap, settings.same_dim, settings.in_folder,
                          default_chunksize(n, algorithm, processes), algorithm, scratch=scratch))
        run_tasks(db, db_path, tasks, collector, threshold=cap, orientations=orientations, px_size=px,
                  processes=processes, algorithm=algorithm, progress=None, started=time.monotonic())
    return (scope.ids, *collector.pairs())
