"""One scan: walk the scope, diff each folder, read what changed, write in batches, drop what is gone.

    walk (stat only) -> diff each folder against its rows -> read files here or in workers
        -> write results in batched transactions -> remove what is gone, at the very end

Only this process writes to SQLite. Removals wait for the end of the walk (a file missing here
may turn up in a folder walked later, as a move); an interrupted scan removes nothing and the
next one finishes the job.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from imgindex.cluster.connect import executor, open_cluster
from imgindex.scan.on_cluster import ClusterReader
from imgindex.db.connect import abandon_transaction
from imgindex.db.queries import get_setting, set_setting
from imgindex.db.runs import now, start_run, timings_json, update_run
from imgindex.errors import ImgIndexError, SettingsMismatchError
from imgindex.scan import discover
from imgindex.scan.decode import DECODER, recipes
from imgindex.scan.diff import Row, diff_folder
from imgindex.scan.reader import ReadContext, reader, work
from imgindex.scan.writer import IndexWriter
from imgindex.types import ScanErrorInfo, ScanProgress, ScanReport, ScanScope, ScanTimings, SkippedFile
from imgindex.workers import resolve_processes

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlite_utils import Database

log = logging.getLogger(__name__)

PX_SIZE_RANGE = (10, 5000)


def check_px_size(px_size: int) -> int:
    lo, hi = PX_SIZE_RANGE
    if not isinstance(px_size, int) or isinstance(px_size, bool) or not lo <= px_size <= hi:
        raise ImgIndexError(f"px_size must be a whole number from {lo} to {hi} (got {px_size!r}).")
    return px_size


def scan(
    db: Database,
    db_path: str,
    scope: ScanScope,
    *,
    limit_extensions: bool = True,
    px_size: int = 50,
    processes: int | None = None,
    progress: Callable[[ScanProgress], None] | None = None,
    scheduler=None,
) -> ScanReport:
    """Bring the index ``db`` (opened on ``db_path``) in line with the folders of ``scope``.
    ``scheduler``: read the files on a Dask cluster (``imgindex.cluster.connect``)."""
    px_size = check_px_size(px_size)
    processes = resolve_processes(processes)
    if scope.missing_ok:
        roots = tuple(dict.fromkeys(os.path.abspath(os.fspath(r)) for r in scope.roots))
    else:
        roots = tuple(dict.fromkeys(discover.normalise_root(r) for r in scope.roots))
    if not roots:
        raise ImgIndexError("Give at least one folder to scan.")
    _claim_px_size(db, px_size)
    scope = ScanScope(roots, frozenset(os.path.abspath(r) for r in scope.flat),
                      frozenset(os.path.abspath(p) for p in scope.skip_paths), scope.recursive, scope.missing_ok)
    with open_cluster(scheduler, workers=processes) as cluster:
        return _ScanRun(db, db_path, scope, limit_extensions, px_size, processes, progress, cluster).execute()


def _claim_px_size(db: Database, px_size: int) -> None:
    stored = get_setting(db, "px_size")
    has_images = db.execute("SELECT EXISTS(SELECT 1 FROM images)").fetchone()[0]
    if stored is not None and int(stored) != px_size and has_images:
        raise SettingsMismatchError(
            f"This index was built with px_size={stored}; a scan with px_size={px_size} would mix "
            f"tensors that cannot be compared. Use --px-size {stored}, or another --db for {px_size}."
        )
    with db.atomic():
        set_setting(db, "px_size", str(px_size))


class _ScanRun:
    """The loop of one scan: walk, diff, read, write; then removal and the scans row."""

    def __init__(self, db, db_path, scope: ScanScope, limit_extensions, px_size, processes, progress, cluster):
        self.db, self.scope, self.progress = db, scope, progress
        self.limit_extensions = limit_extensions
        self.started = time.monotonic()
        self.total: int | None = None
        self.visited: set[str] = set()
        self.unlisted: list[ScanErrorInfo] = []
        self.skipped: list[SkippedFile] = []
        self.timings: ScanTimings | None = None
        self.executor = executor(cluster, processes)
        self.reader = reader(db.conn, db_path, px_size, processes) if cluster is None else ClusterReader(
            cluster, px_size, ReadContext(db.conn, px_size).known, scope.roots)
        options = {"recursive": scope.recursive, "limit_extensions": limit_extensions, "px_size": px_size,
                   "processes": processes, "decoder": DECODER}
        scan_id = start_run(db, "scans", {"started_at": now(), "status": "running", "executor": executor(cluster, processes),
                                          "roots": json.dumps(list(scope.roots)), "options": json.dumps(options)})
        self.writer = IndexWriter(db, px_size, scan_id)

    def execute(self) -> ScanReport:
        if self.progress is not None:
            threading.Thread(target=self._count_total, daemon=True).start()
        status = "failed"
        try:
            walk = discover.walk(self.scope.roots, recursive=self.scope.recursive,
                                 limit_extensions=self.limit_extensions, flat_roots=self.scope.flat)
            for listing in _timed(walk, self.writer.spent):
                for task in self._diff(listing):
                    self.reader.submit(task, work(task))
                    self._take(self.reader.ready())
                self._take(self.reader.ready())
                self.writer.maybe_flush()
                self._report_progress()
            self._take(self.reader.finish())
            self.writer.flush()
            self._remove_gone()
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.reader.close()
            self._wind_up(status)
        return self._report(status)

    def _diff(self, listing: discover.FolderListing):
        """One folder's files to read; its missing rows and forgotten errors go to the writer."""
        started = time.perf_counter()
        try:
            return self._diff_folder(listing)
        finally:
            self.writer.spent["walk"] += time.perf_counter() - started

    def _diff_folder(self, listing: discover.FolderListing):
        folder = listing.folder
        if listing.error is not None:
            self.unlisted.append(ScanErrorInfo(folder, "folder_unreadable", listing.error))
            log.warning("%s: %s", folder, listing.error)
            return ()
        self.visited.add(folder)
        rows = {path: Row(*facts) for path, *facts in self.db.execute(
            "SELECT path, id, size, mtime_ns, decoder FROM images WHERE folder = ?", [folder])}
        failed = {path: (size, mtime_ns) for path, size, mtime_ns in self.db.execute(
            "SELECT path, size, mtime_ns FROM scan_errors WHERE folder = ?", [folder])}
        diff = diff_folder(folder, listing.files, rows, failed, decoders=recipes, skip_paths=self.scope.skip_paths)
        counts = self.writer.counts
        counts.skipped += len(listing.skipped)
        self.skipped.extend(listing.skipped)
        counts.seen += diff.seen
        counts.unchanged += diff.unchanged
        counts.failed += diff.failed_again
        self.writer.missing.update(diff.missing)
        self.writer.forget_errors.extend(diff.forget_errors)
        return diff.to_read

    def _take(self, results) -> None:
        for task, result in results:
            self.writer.add(task, result)
            self._report_progress()

    def _wind_up(self, status: str) -> None:
        """Keep the results already read (interrupted), and record how the run ended."""
        try:
            if status == "interrupted":
                abandon_transaction(self.db)
                self.writer.flush()
            update_run(self.db, "scans", self.writer.scan_id,
                       {**self.writer.counts.as_row(), "finished_at": now(), "status": status,
                        "timings": timings_json(self._timings())})
        except Exception:
            if status != "failed":
                raise
            log.exception("could not record the end of scan %s", self.writer.scan_id)

    def _count_total(self) -> None:
        try:
            self.total = discover.count_files(self.scope.roots, recursive=self.scope.recursive,
                                              limit_extensions=self.limit_extensions)
        except Exception:  # an estimate only; never let it disturb the scan
            log.debug("could not count files for the progress total", exc_info=True)

    def _report_progress(self) -> None:
        if self.progress is not None:
            c = self.writer.counts
            self.progress(ScanProgress(seen=c.seen, decoded=c.decoded, unchanged=c.unchanged, skipped=c.skipped,
                                       failed=c.failed, total=self.total, elapsed=time.monotonic() - self.started))

    def _remove_gone(self) -> None:
        """Drop rows of files not found: missing in walked folders, or in folders now gone. A root that
        vanished during the scan (a drive unmounted, a share dropped) keeps every row under it."""
        vanished = [root for root in self.scope.roots if not os.path.isdir(root)]
        for root in vanished:
            self.unlisted.append(ScanErrorInfo(root, "folder_vanished", "vanished during the scan (a drive unmounted?):"
                                               " the rows of its files are kept; scan again once it is back"))
            log.warning("%s vanished during the scan: its rows are kept", root)
        gone = {i for i, path in self.writer.missing.items() if not any(discover.under(path, r) for r in vanished)}
        gone_error_paths = []
        for root in (r for r in self.scope.roots if r not in vanished):
            for table, key in (("images", "id"), ("scan_errors", "path")):
                for value, folder in _rows_under(self.db, table, key, root):
                    if folder in self.visited or self._kept(folder, root):
                        continue
                    (gone.add if table == "images" else gone_error_paths.append)(value)
        self.writer.remove(gone, gone_error_paths)

    def _kept(self, folder: str, root: str) -> bool:
        """A folder not walked is kept when the walk was not meant to reach it or could not."""
        if folder != root and (not self.scope.recursive or root in self.scope.flat):
            return True
        return any(discover.under(folder, bad.path) for bad in self.unlisted)

    def _timings(self) -> ScanTimings:
        """Measured once, when the scans row is written: the report says the same."""
        if self.timings is None:
            self.timings = ScanTimings(total=time.monotonic() - self.started, **self.writer.spent)
        return self.timings

    def _report(self, status: str) -> ScanReport:
        c = self.writer.counts
        return ScanReport(
            scan_id=self.writer.scan_id, roots=self.scope.roots, status=status, seen=c.seen, added=c.added,
            updated=c.updated, moved=c.moved, reused=c.reused, unchanged=c.unchanged, removed=c.removed,
            skipped=c.skipped, failed=c.failed, vanished=c.vanished, decoded=c.decoded,
            duration=time.monotonic() - self.started, workers=self.reader.workers_started, executor=self.executor,
            errors=tuple(self.writer.errors), unlisted_folders=tuple(self.unlisted), skipped_files=tuple(self.skipped),
            timings=self._timings(),
        )


def _timed(items, spent: dict[str, float], step: str = "walk"):
    """``items`` as they come, the time spent making each added to ``spent[step]``."""
    it = iter(items)
    while True:
        started = time.perf_counter()
        item = next(it, _END)
        spent[step] += time.perf_counter() - started
        if item is _END:
            return
        yield item


_END = object()


def _rows_under(db: Database, table: str, key: str, root: str) -> list[tuple]:
    prefix = root if root.endswith(os.sep) else root + os.sep
    upper = prefix[:-1] + chr(ord(os.sep) + 1)
    return db.execute(
        f"SELECT {key}, folder FROM {table} WHERE folder = ? OR (folder >= ? AND folder < ?)", [root, prefix, upper]
    ).fetchall()
