"""``Index``: the Python API over one SQLite index file, and the one door to every stage.

The CLI, the watcher and the difPy-shaped API use only this class: each method checks its
options, calls one stage and returns a typed report (``imgindex.types``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from sqlite_utils import Database

from imgindex.actions import apply as actions_apply
from imgindex.actions import journal, plan
from imgindex.db import check as db_check
from imgindex.db import queries
from imgindex.db.connect import connect, write_transaction
from imgindex.db.decisions import counts as decision_counts
from imgindex.db.queries import VectorChunk
from imgindex.db.status import status as read_status
from imgindex.scan.formats import skipped_kind  # noqa: F401 (for compat: the walk's reasons)
from imgindex.scan.run import PX_SIZE_RANGE, scan as run_scan  # noqa: F401 (PX_SIZE_RANGE: for the CLI)
from imgindex.compare import profile, results
from imgindex.compare.profile import Profile
from imgindex.compare.regroup import regroup as regroup_groups, regroup_if_stale
from imgindex.compare.run import search as run_search
from imgindex.decide import commands as decide
from imgindex.decide import record as decide_record
from imgindex.scan.discover import under
from imgindex.scan.refresh import refresh
from imgindex.types import (
    ActionPlan,
    ActionProgress,
    ActionReport,
    CheckReport,
    Decision,
    DecisionReport,
    RefreshReport,
    GroupRow,
    ReportProgress,
    ReportSummary,
    ScanErrorInfo,
    ScanProgress,
    ScanReport,
    ScanScope,
    SearchProgress,
    SearchReport,
    Status,
)

DEFAULT_DB = "imgindex.db"


class Index:
    """An image index stored in SQLite; created and upgraded on open.

    >>> with Index("photos.db") as index:
    ...     report = index.scan(["~/Pictures"])
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_DB):
        self.path = Path(os.path.expanduser(os.fspath(path))).absolute()
        self.db: Database = connect(self.path)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- scanning

    def scan(self, paths: Iterable[str | os.PathLike] | str | os.PathLike, *, recursive: bool = True,
             limit_extensions: bool = True, px_size: int = 50, processes: int | None = None,
             reference: Iterable[str | os.PathLike] = (),
             progress: Callable[[ScanProgress], None] | None = None, scheduler=None) -> ScanReport:
        """Bring the index in line with ``paths``: add new files, re-read changed ones, drop gone ones.

        Files that cannot be decoded are recorded in ``scan_errors``, never raised. ``reference``
        folders are scanned too (when not under ``paths``) and become the index's reference folders.
        ``scheduler``: read the files on a Dask cluster: ``'tcp://HOST:8786'``, ``'local'`` (a
        LocalCluster of ``processes`` workers) or a ``distributed.Client``; None: the local worker
        pool, unless ``IMGINDEX_SCHEDULER`` names one (the ``dask`` extra).
        """
        paths = [_expand(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
        reference = [_expand(r) for r in reference]
        scope = ScanScope(_with_reference(paths, reference), recursive=recursive)
        report = self.scan_scope(scope, limit_extensions=limit_extensions, px_size=px_size, processes=processes,
                                 progress=progress, scheduler=scheduler)
        self.add_reference(reference, regroup=False)
        return report

    def refresh_signals(self, roots=(), *, processes=None, progress=None) -> RefreshReport:
        """Give images indexed before borders were looked for their trimmed tensors (``scan.refresh``)."""
        return refresh(self.db, self.px_size or 50, tuple(map(_expand, roots)), processes=processes, progress=progress)

    def scan_scope(self, scope: ScanScope, *, limit_extensions: bool = True, px_size: int = 50,
                   processes: int | None = None, progress: Callable[[ScanProgress], None] | None = None,
                   scheduler=None) -> ScanReport:
        """Scan exactly ``scope``: some folders deep, some flat, some files left for later (the watcher's way)."""
        return run_scan(self.db, str(self.path), scope, limit_extensions=limit_extensions, px_size=px_size,
                        processes=processes, progress=progress, scheduler=scheduler)

    # ---------------------------------------------------------------- searching and results

    def search(self, *, similarity: str | float | None = None, rotate: bool | None = None,
               mirror: bool | None = None, same_dim: bool | None = None, keep: str | None = None,
               prefer_folders: Iterable[str] | None = None, reference: Iterable[str | os.PathLike] = (),
               in_folder: bool = False, roots: Iterable[str | os.PathLike] = (), processes: int | None = None,
               chunksize: int | None = None, full: bool = False, save_profile: bool = False,
               progress: Callable[[SearchProgress], None] | None = None, scheduler=None, signals=None
               ) -> SearchReport:
        """Find matching pairs among indexed images (those under ``roots``, or all) and group them.

        Settings left at None come from the index's search profile (set by the first search;
        ``save_profile=True`` makes this run's settings the profile). ``reference`` folders are
        added to the index's (see ``add_reference``). Incremental by default: only images added
        or moved since the last search with the same settings are compared. ``full`` starts over.
        ``scheduler``: a Dask cluster, as for ``scan``. ``signals``: pixels, tone, rank, trimmed (README)."""
        self.add_reference(reference, regroup=False)
        return run_search(self.db, str(self.path), similarity=similarity, rotate=rotate, mirror=mirror,
                          same_dim=same_dim, keep=keep, prefer_folders=None if prefer_folders is None else
                          tuple(prefer_folders), in_folder=in_folder, roots=tuple(_expand(r) for r in roots),
                          processes=processes, chunksize=chunksize, full=full, save_profile=save_profile,
                          progress=progress, scheduler=scheduler, signals=signals)

    def result(self, search_id: int | None = None) -> dict:
        """difPy's shape, {keeper_path: [[match_path, mse], ...]}, of the latest (or given) search."""
        return results.result(self.db, search_id)

    def lower_quality(self, search_id: int | None = None) -> list[str]:
        """Paths of every matched image except its group's keeper."""
        return results.lower_quality(self.db, search_id)

    def group_rows(self, search_id: int | None = None) -> list[GroupRow]:
        """Every grouped image of the latest (or given) search, keeper first in each group."""
        return results.group_rows(self.db, search_id)

    def scan_errors(self, roots: Iterable[str | os.PathLike]) -> list[ScanErrorInfo]:
        """The files under ``roots`` that could not be read (the ``scan_errors`` rows), with why."""
        folders = [os.path.abspath(os.path.expanduser(os.fspath(r))) for r in roots]
        return [ScanErrorInfo(*row) for row in queries.scan_errors_under(self.db, folders)]

    def search_stats(self, search_id: int | None = None) -> dict:
        """The searches row of the latest (or given) search: settings, algorithm, counts, timings."""
        return results.search_stats(self.db, search_id)

    # ---------------------------------------------------------------- deciding (the groups follow at once)

    def ignore(self, paths: Iterable[str | os.PathLike], *, note: str | None = None) -> DecisionReport:
        """Every two of these images are different photos: never reported as a pair again (kept by content)."""
        return self._decided(lambda: decide.ignore(self.db, _many(paths), note=note))

    def ignore_group(self, group_id: int, *, note: str | None = None) -> DecisionReport:
        """Every two members of a group of the latest search are different photos."""
        return self.ignore(decide.group_paths(self.db, group_id), note=note)

    def unignore(self, paths: Iterable[str | os.PathLike] = (), *, decision_ids: Iterable[int] = ()) -> DecisionReport:
        """Take back 'not duplicates' among these images (or the decisions with these ids)."""
        return self._decided(lambda: decide.unignore(self.db, _many(paths), decision_ids=decision_ids))

    def keep(self, paths: Iterable[str | os.PathLike], *, note: str | None = None) -> DecisionReport:
        """Pin images as keepers of whatever group they are in, until ``unkeep``; never acted on."""
        return self._decided(lambda: decide.keep(self.db, _many(paths), note=note))

    def unkeep(self, paths: Iterable[str | os.PathLike]) -> DecisionReport:
        return self._decided(lambda: decide.unkeep(self.db, _many(paths)))

    def add_reference(self, folders: Iterable[str | os.PathLike], *, regroup: bool = True) -> DecisionReport | None:
        """Reference folders: their images are kept, never moved or deleted, not compared with each other."""
        folders = _many(folders)
        if not folders:
            return None
        return self._decided(lambda: decide.add_reference(self.db, folders), regroup=regroup)

    def remove_reference(self, folders: Iterable[str | os.PathLike]) -> DecisionReport:
        return self._decided(lambda: decide.remove_reference(self.db, _many(folders)))

    def mark_reviewed(self, group_ids: Iterable[int], *, reviewed: bool = True) -> int:
        """Groups of the latest search looked at and accepted (kept by content: a new copy makes it new again)."""
        with write_transaction(self.db):
            return decide.mark_reviewed(self.db, group_ids, reviewed=reviewed)

    def decisions(self, kind: str | None = None) -> list[Decision]:
        """The decisions in force ('not-duplicates', 'keep', 'reference', or all), oldest first."""
        return decide_record.listing(self.db, kind)

    @property
    def profile(self) -> Profile | None:
        """The search profile (None before the first search)."""
        return profile.load(self.db)

    def configure(self, *, save: bool = True, **settings) -> Profile:
        """Change the search profile: similarity, rotate, mirror, same_dim, keep, prefer_folders."""
        chosen, _ = profile.resolve(self.db, profile.given(**settings), save_profile=save)
        regroup_groups(self.db, keeper=chosen)  # the views follow a new keeper rule at once
        return chosen

    def _decided(self, record: Callable[[], DecisionReport], *, regroup: bool = True) -> DecisionReport:
        """Record decisions and re-make the latest search's groups they touch (no comparing), in one
        transaction that waits for another writer rather than failing."""
        with write_transaction(self.db):
            report = record()
            touching = decide.touched(self.db, report) if regroup else set()
            return dataclasses.replace(report, groups=regroup_groups(self.db, touching=touching) if regroup else None)

    # ---------------------------------------------------------------- acting

    def plan_move_to(self, destination: str | os.PathLike, *, groups: Iterable[int] | None = None) -> ActionPlan:
        """What ``move_to`` would do: each lower_quality image of the latest search (of ``groups``) and its new path."""
        journal.recover(self.db)
        regroup_if_stale(self.db)
        return plan.plan_move_to(self.db, destination, groups)

    def plan_delete(self, *, permanent: bool = False, groups: Iterable[int] | None = None) -> ActionPlan:
        """What ``delete`` would do: each lower_quality image of the latest search (of ``groups``, or all)."""
        journal.recover(self.db)
        regroup_if_stale(self.db)
        return plan.plan_delete(self.db, permanent=permanent, groups=groups)

    def plan_undo(self, *, run_id: int | None = None, action_id: int | None = None) -> ActionPlan:
        """What ``undo`` would put back: a run's files (the latest run by default) or one action's."""
        journal.recover(self.db)
        return plan.plan_undo(self.db, run_id=run_id, action_id=action_id)

    def apply(self, plan: ActionPlan, *, progress: Callable[[ActionProgress], None] | None = None) -> ActionReport:
        """Carry out a plan, journaled in ``actions``, each file re-checked first; files put back are re-indexed."""
        report = actions_apply.apply(self.db, plan, progress=progress)
        folders = tuple(f for f in report.reindex_folders if os.path.isdir(f))
        if not folders:
            return report
        scan = self.scan_scope(ScanScope(folders, flat=frozenset(folders)), px_size=self.px_size or 50, processes=1)
        return dataclasses.replace(report, reindexed=scan.added + scan.moved)

    def move_to(self, destination: str | os.PathLike, **options) -> ActionReport:
        """Move lower_quality images under ``destination`` (folders kept, nothing overwritten); see apply."""
        return self.apply(self.plan_move_to(destination), **options)

    def delete(self, *, permanent: bool = False, **options) -> ActionReport:
        """Send lower_quality images to the system trash (or delete them for good with ``permanent``)."""
        return self.apply(self.plan_delete(permanent=permanent), **options)

    def undo(self, *, run_id: int | None = None, action_id: int | None = None, **options) -> ActionReport:
        """Put back what the latest (or given) move-to / delete moved or trashed."""
        return self.apply(self.plan_undo(run_id=run_id, action_id=action_id), **options)

    def recover(self):
        """Settle what an interrupted move-to, delete or undo left unfinished, from the disk."""
        return journal.recover(self.db)

    def check(self, *, repair: bool = False) -> CheckReport:
        """The index's invariants (``db.check``); ``repair`` settles journals, drops orphan rows, queues
        images without a good tensor for the next scan and re-makes bad groups. Never touches a photo."""
        started, done = time.monotonic(), []
        if repair:
            with write_transaction(self.db):
                done += [f"settled {len(journal.recover(self.db))} files of interrupted actions"]
                done += db_check.repair(self.db)
                if any(f.name == "groups" for f in db_check.findings(self.db)):
                    regroup_groups(self.db)
                    done.append("re-made the latest search's groups")
        return CheckReport(tuple(db_check.findings(self.db)), tuple(done), self.count(), time.monotonic() - started)

    # ---------------------------------------------------------------- looking

    def report(self, output: str | os.PathLike, *, limit_groups: int | None = None, thumb_size: int = 256,
               search_id: int | None = None, processes: int | None = None,
               progress: Callable[[ReportProgress], None] | None = None) -> ReportSummary:
        """Write the HTML report of a search (the latest by default); returns a ReportSummary. Never acts."""
        from imgindex.report.write import write_report  # Jinja2 loads only for reports

        return write_report(self.db, str(self.path), output, limit_groups=limit_groups, thumb_size=thumb_size,
                            search_id=search_id, processes=processes, progress=progress)

    def status(self) -> Status:
        """Images, errors, the last scan and search, and whether a watcher is running (a Status)."""
        return dataclasses.replace(read_status(self.db), profile=self.profile, decisions=decision_counts(self.db))

    def watch(self, roots, *, stop, reference: Iterable[str | os.PathLike] = (), **options) -> None:
        """Keep the index and matches current until ``stop`` (a threading.Event) is set; see Watcher.

        ``reference`` folders are watched too, and become the index's reference folders once scanned.
        """
        from imgindex.watch.watcher import Watcher  # watchdog's observers load only for watching

        reference = [_expand(r) for r in reference]
        roots = _with_reference([_expand(r) for r in roots], reference)
        Watcher(self, roots, on_start=lambda: self.add_reference(reference, regroup=False), **options).run(stop)

    def count(self) -> int:
        """Number of indexed images."""
        return self.db.execute("SELECT count(*) FROM images").fetchone()[0]

    @property
    def px_size(self) -> int | None:
        return queries.px_size(self.db)

    def vectors(self, *, chunk_size: int = 4096, min_id: int = 0) -> Iterator[VectorChunk]:
        """Stream stored tensors in id order, ``chunk_size`` at a time."""
        return queries.iter_vector_chunks(self.db.conn, chunk_size=chunk_size, min_id=min_id)


def _expand(path: str | os.PathLike) -> str:
    return os.path.expanduser(os.fspath(path))


def _with_reference(roots: list[str], reference: list[str]) -> tuple[str, ...]:
    """The roots, and the reference folders not under one of them (they are scanned and watched too)."""
    inside = [os.path.abspath(r) for r in roots]
    return tuple(roots + [r for r in reference if not any(under(os.path.abspath(r), p) for p in inside)])


def _many(paths) -> list:
    """One path given alone, or several: a list of them (a string is never taken apart)."""
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
