"""Bring the index in line with the folders: diff file facts, decode what changed, write in batches.

The pipeline, all driven from the main process so only it writes to SQLite:

    walk (stat only) -> diff each folder against its rows -> read_file in workers
        -> apply results in batched transactions -> remove what is gone, at the very end

- Unchanged (size, mtime_ns, decoder) files are never opened: a re-scan costs the walk.
- A file is hashed before it is decoded; content already in the index is not decoded again:
  a moved or renamed file keeps its row (and id), a byte copy reuses the stored tensor.
- A file whose content changed gets a new row id (ids are never reused), so "id above N"
  means "new since N" for the comparer.
- Removals wait for the end of the walk (a file missing here may turn up in a folder walked
  later, as a move); an interrupted scan removes nothing and the next one finishes the job.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from imgindex import discover, store
from imgindex.decode import DECODER, FileResult, read_file
from imgindex.errors import DecodeError, ImgIndexError, SettingsMismatchError
from imgindex.workers import WorkerDied, WorkerPool

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)

PX_SIZE_RANGE = (10, 5000)
TASK_BATCH = 8  # files per worker task: amortises inter-process overhead
INLINE_BELOW = 32  # fewer files to decode than this: not worth starting processes
FLUSH_EVERY_ROWS = 500
FLUSH_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class ScanProgress:
    """A snapshot for progress bars. ``total`` is an estimate that arrives after a quick count."""

    seen: int
    decoded: int
    unchanged: int
    skipped: int
    failed: int
    total: int | None
    elapsed: float


@dataclass(frozen=True)
class ScanErrorInfo:
    path: str
    error_class: str
    message: str


@dataclass(frozen=True)
class ScanReport:
    """What a scan did. Counts are of files; ``errors`` are the files that failed in this scan."""

    scan_id: int
    roots: tuple[str, ...]
    status: str
    seen: int
    added: int
    updated: int
    moved: int
    reused: int
    unchanged: int
    removed: int
    skipped: int
    failed: int
    vanished: int
    decoded: int
    duration: float
    workers: int = 0  # decoding processes started (0: decoded in this process)
    errors: tuple[ScanErrorInfo, ...] = ()
    unlisted_folders: tuple[ScanErrorInfo, ...] = ()


@dataclass
class _Counts:
    seen: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    reused: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    failed: int = 0
    vanished: int = 0
    decoded: int = 0


@dataclass(frozen=True)
class _Task:
    path: str
    folder: str
    old_id: int | None  # the row this path had, if any


def check_px_size(px_size: int) -> int:
    lo, hi = PX_SIZE_RANGE
    if not isinstance(px_size, int) or isinstance(px_size, bool) or not lo <= px_size <= hi:
        raise ImgIndexError(f"px_size must be a whole number from {lo} to {hi} (got {px_size!r}).")
    return px_size


def resolve_processes(processes: int | None) -> int:
    if processes is None:
        return os.cpu_count() or 1
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise ImgIndexError(f"processes must be a whole number >= 1 (got {processes!r}).")
    return processes


def scan(
    db: Database,
    db_path: str,
    roots: Iterable[str | os.PathLike],
    *,
    recursive: bool = True,
    limit_extensions: bool = True,
    px_size: int = 50,
    processes: int | None = None,
    progress: Callable[[ScanProgress], None] | None = None,
    flat_roots: Iterable[str] = (),
    skip_paths: Iterable[str] = (),
    missing_ok: bool = False,
) -> ScanReport:
    """Scan ``roots`` into the index ``db`` (opened on ``db_path``); see the module docstring.

    For the watcher: ``flat_roots`` are scanned without subfolders; files in ``skip_paths`` (still
    being written) are neither read nor dropped; with ``missing_ok`` a root that is gone means
    everything indexed under it is gone.
    """
    px_size = check_px_size(px_size)
    processes = resolve_processes(processes)
    if missing_ok:
        roots = tuple(dict.fromkeys(os.path.abspath(os.fspath(r)) for r in roots))
    else:
        roots = tuple(dict.fromkeys(discover.normalise_root(r) for r in roots))
    if not roots:
        raise ImgIndexError("Give at least one folder to scan.")
    _claim_px_size(db, px_size)
    run = _ScanRun(db, db_path, roots, recursive, limit_extensions, px_size, processes, progress)
    run.flat_roots = frozenset(os.path.abspath(r) for r in flat_roots)
    run.skip_paths = frozenset(os.path.abspath(p) for p in skip_paths)
    return run.execute()


def _claim_px_size(db: Database, px_size: int) -> None:
    stored = store.get_setting(db, "px_size")
    has_images = db.execute("SELECT EXISTS(SELECT 1 FROM images)").fetchone()[0]
    if stored is not None and int(stored) != px_size and has_images:
        raise SettingsMismatchError(
            f"This index was built with px_size={stored}; a scan with px_size={px_size} would mix "
            f"tensors that cannot be compared. Use --px-size {stored}, or another --db for {px_size}."
        )
    with db.atomic():
        store.set_setting(db, "px_size", str(px_size))


class _ScanRun:
    """One scan: state shared by the walk, the result handler and the final removal."""

    def __init__(self, db, db_path, roots, recursive, limit_extensions, px_size, processes, progress):
        self.db = db
        self.db_path = db_path
        self.roots = roots
        self.recursive = recursive
        self.limit_extensions = limit_extensions
        self.px_size = px_size
        self.processes = processes
        self.progress = progress
        self.counts = _Counts()
        self.errors: list[ScanErrorInfo] = []
        self.unlisted: list[ScanErrorInfo] = []
        self.missing: dict[int, str] = {}  # row id -> old path, for rows whose file was not found
        self.visited: set[str] = set()
        self.unlisted_folders: list[str] = []
        self.pending: list[tuple[_Task, FileResult]] = []
        self.forget_errors: list[str] = []  # error rows of files no longer there
        self.last_flush = time.monotonic()
        self.started = time.monotonic()
        self.total: int | None = None
        self.scan_id = 0
        self.flat_roots: frozenset[str] = frozenset()
        self.skip_paths: frozenset[str] = frozenset()

    # -- the run -------------------------------------------------------------------------
    def execute(self) -> ScanReport:
        self.scan_id = self._start_row()
        if self.progress is not None:
            threading.Thread(target=self._count_total, daemon=True).start()
        runner = self.runner = _Runner(self.db_path, self.px_size, self.processes, self._known_hash)
        status = "failed"
        try:
            listings = discover.walk(
                self.roots, recursive=self.recursive, limit_extensions=self.limit_extensions, flat_roots=self.flat_roots
            )
            for listing in listings:
                for task in self._diff_folder(listing):
                    runner.submit(task)
                    self._take(runner.ready())
                self._take(runner.ready())
                self._maybe_flush()
                self._report_progress()
            self._take(runner.finish())
            self._flush()
            self._remove_gone()
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            runner.close()
            self._wind_up(status)
        return self._report(status)

    def _wind_up(self, status: str) -> None:
        """Keep the results already read (interrupted), and record how the run ended."""
        try:
            if status == "interrupted":
                self._flush()
            self._finish_row(status)
        except Exception:
            if status != "failed":
                raise
            log.exception("could not record the end of scan %s", self.scan_id)

    def _count_total(self) -> None:
        try:
            self.total = discover.count_files(self.roots, recursive=self.recursive, limit_extensions=self.limit_extensions)
        except Exception:  # an estimate only; never let it disturb the scan
            log.debug("could not count files for the progress total", exc_info=True)

    def _report_progress(self) -> None:
        if self.progress is None:
            return
        c = self.counts
        self.progress(
            ScanProgress(
                seen=c.seen,
                decoded=c.decoded,
                unchanged=c.unchanged,
                skipped=c.skipped,
                failed=c.failed,
                total=self.total,
                elapsed=time.monotonic() - self.started,
            )
        )

    # -- diff ------------------------------------------------------------------------------
    def _diff_folder(self, listing: discover.FolderListing) -> Iterator[_Task]:
        """Compare one folder's files with its rows; yield the files that must be read."""
        folder = listing.folder
        if listing.error is not None:
            self.unlisted_folders.append(folder)
            self.unlisted.append(ScanErrorInfo(folder, "folder_unreadable", listing.error))
            log.warning("%s: %s", folder, listing.error)
            return
        self.visited.add(folder)
        self.counts.skipped += len(listing.skipped)
        rows = {
            path: (image_id, size, mtime_ns, decoder)
            for image_id, path, size, mtime_ns, decoder in self.db.execute(
                "SELECT id, path, size, mtime_ns, decoder FROM images WHERE folder = ?", [folder]
            )
        }
        failed = {
            path: (size, mtime_ns)
            for path, size, mtime_ns in self.db.execute(
                "SELECT path, size, mtime_ns FROM scan_errors WHERE folder = ?", [folder]
            )
        }
        present = set()
        for facts in listing.files:
            present.add(facts.path)
            if facts.path in self.skip_paths:
                continue  # still being written: next time
            self.counts.seen += 1
            row = rows.get(facts.path)
            if row is not None and (row[1], row[2], row[3]) == (facts.size, facts.mtime_ns, DECODER):
                self.counts.unchanged += 1
                continue
            if row is None and failed.get(facts.path) == (facts.size, facts.mtime_ns):
                self.counts.failed += 1  # still the same bad file: not opened again
                continue
            yield _Task(facts.path, folder, None if row is None else row[0])
        for path, row in rows.items():
            if path not in present:
                self.missing[row[0]] = path
        self.forget_errors.extend(p for p in failed if p not in present)

    # -- results ---------------------------------------------------------------------------
    def _known_hash(self, digest: str) -> bool:
        return _hash_indexed(self.db.conn, digest, self.px_size)

    def _take(self, results: Iterable[tuple[_Task, FileResult]]) -> None:
        for task, result in results:
            self.pending.append((task, result))
            if result.decoded is not None:
                self.counts.decoded += 1
            self._maybe_flush()
            self._report_progress()

    def _maybe_flush(self) -> None:
        due = time.monotonic() - self.last_flush >= FLUSH_EVERY_SECONDS
        if len(self.pending) >= FLUSH_EVERY_ROWS or (due and (self.pending or self.forget_errors)):
            self._flush()

    def _flush(self) -> None:
        """Apply pending results in one transaction, then record the counts so far."""
        pending, self.pending = self.pending, []
        forget, self.forget_errors = self.forget_errors, []
        self.last_flush = time.monotonic()
        with self.db.atomic():
            for path in forget:
                self.db.execute("DELETE FROM scan_errors WHERE path = ?", [path])
            for task, result in pending:
                self._apply(task, result)
            self._write_counts()

    def _apply(self, task: _Task, result: FileResult) -> None:
        if result.vanished:
            self.counts.vanished += 1
            if task.old_id is not None:
                self.missing[task.old_id] = task.path
            return
        if result.error is not None:
            self._record_error(task, result)
            return
        if task.old_id is not None:
            old_hash = self.db.execute("SELECT content_hash FROM images WHERE id = ?", [task.old_id]).fetchone()
            if old_hash and old_hash[0] == result.content_hash and result.known:
                self._touch(task.old_id, result)  # same bytes, new mtime (touched, copied over itself)
                return
            self._delete_images([task.old_id])  # new content: a new row, a new id
            self.counts.updated += 1
        else:
            self.counts.added += 1
        self.db.execute("DELETE FROM scan_errors WHERE path = ?", [task.path])
        if result.known:
            self._place_known(task, result)
        else:
            self._insert(task, result)

    def _touch(self, image_id: int, result: FileResult) -> None:
        self.db.execute(
            "UPDATE images SET size = ?, mtime_ns = ? WHERE id = ?", [result.size, result.mtime_ns, image_id]
        )
        self.counts.unchanged += 1

    def _place_known(self, task: _Task, result: FileResult) -> None:
        """Content already indexed: a move keeps its row; a copy reuses the tensor."""
        candidates = self.db.execute(
            "SELECT id, path FROM images WHERE content_hash = ? AND px_size = ? AND decoder = ? ORDER BY id",
            [result.content_hash, self.px_size, DECODER],
        ).fetchall()
        for image_id, old_path in candidates:
            if image_id in self.missing or not os.path.lexists(old_path):
                self.missing.pop(image_id, None)
                self.db.execute(
                    "UPDATE images SET path = ?, folder = ?, size = ?, mtime_ns = ?, moved_at = ? WHERE id = ?",
                    [task.path, task.folder, result.size, result.mtime_ns, _now(), image_id],
                )
                self._undo_added(task)
                self.counts.moved += 1
                return
        if candidates:
            source = candidates[0][0]
            new_id = self.db.execute(
                "INSERT INTO images (path, folder, size, mtime_ns, width, height, format, content_hash,"
                " px_size, decoder, indexed_at)"
                " SELECT ?, ?, ?, ?, width, height, format, content_hash, px_size, decoder, ?"
                " FROM images WHERE id = ?",
                [task.path, task.folder, result.size, result.mtime_ns, _now(), source],
            ).lastrowid
            self.db.execute(
                "INSERT INTO tensors (image_id, px_size, tensor) SELECT ?, px_size, tensor FROM tensors"
                " WHERE image_id = ?",
                [new_id, source],
            )
            self.counts.reused += 1
            return
        # The row the worker saw went away meanwhile (its file changed): decode here after all.
        fresh = read_file(task.path, self.px_size)
        if fresh.decoded is not None:
            self.counts.decoded += 1
            self._insert(task, fresh)
        elif fresh.error is not None:
            self._undo_added(task)
            self._record_error(task, fresh)
        else:
            self._undo_added(task)
            self.counts.vanished += 1

    def _undo_added(self, task: _Task) -> None:
        if task.old_id is None:
            self.counts.added -= 1
        else:
            self.counts.updated -= 1

    def _insert(self, task: _Task, result: FileResult) -> None:
        d = result.decoded
        image_id = self.db.execute(
            "INSERT INTO images (path, folder, size, mtime_ns, width, height, format, content_hash,"
            " px_size, decoder, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [task.path, task.folder, result.size, result.mtime_ns, d.width, d.height, d.format,
             result.content_hash, self.px_size, DECODER, _now()],
        ).lastrowid
        self.db.execute(
            "INSERT INTO tensors (image_id, px_size, tensor) VALUES (?, ?, ?)", [image_id, self.px_size, d.tensor]
        )

    def _record_error(self, task: _Task, result: FileResult) -> None:
        err = result.error
        self.counts.failed += 1
        if task.old_id is not None:
            self._delete_images([task.old_id])  # its old tensor no longer describes the file
            self.counts.removed += 1
        self.db.execute(
            "INSERT INTO scan_errors (path, folder, error_class, message, at, size, mtime_ns, scan_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET error_class = excluded.error_class,"
            " message = excluded.message, at = excluded.at, size = excluded.size,"
            " mtime_ns = excluded.mtime_ns, scan_id = excluded.scan_id",
            [task.path, task.folder, err.error_class, err.reason, _now(),
             result.size or None, result.mtime_ns or None, self.scan_id],
        )
        self.errors.append(ScanErrorInfo(task.path, err.error_class, err.reason))

    def _delete_images(self, ids: list[int]) -> None:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            self.db.execute(f"DELETE FROM images WHERE id IN ({marks})", part)

    # -- the end -----------------------------------------------------------------------------
    def _remove_gone(self) -> None:
        """Drop rows of files not found: missing in walked folders, or in folders now gone."""
        gone = set(self.missing)
        gone_error_paths = []
        for root in self.roots:
            for table, key in (("images", "id"), ("scan_errors", "path")):
                for value, folder in self._rows_under(table, key, root):
                    if folder in self.visited or self._kept(folder, root):
                        continue
                    (gone.add if table == "images" else gone_error_paths.append)(value)
        with self.db.atomic():
            self._delete_images(sorted(gone))
            for path in gone_error_paths:
                self.db.execute("DELETE FROM scan_errors WHERE path = ?", [path])
            self.counts.removed += len(gone)
            self.missing.clear()
            self._write_counts()

    def _rows_under(self, table: str, key: str, root: str) -> list[tuple]:
        prefix = root if root.endswith(os.sep) else root + os.sep
        upper = prefix[:-1] + chr(ord(os.sep) + 1)
        return self.db.execute(
            f"SELECT {key}, folder FROM {table} WHERE folder = ? OR (folder >= ? AND folder < ?)",
            [root, prefix, upper],
        ).fetchall()

    def _kept(self, folder: str, root: str) -> bool:
        """A folder not walked is kept when the walk was not meant to reach it or could not."""
        if folder != root and (not self.recursive or root in self.flat_roots):
            return True
        return any(discover.under(folder, bad) for bad in self.unlisted_folders)

    # -- the scans row ---------------------------------------------------------------------------
    def _start_row(self) -> int:
        options = {
            "recursive": self.recursive,
            "limit_extensions": self.limit_extensions,
            "px_size": self.px_size,
            "processes": self.processes,
            "decoder": DECODER,
        }
        with self.db.atomic():
            return self.db.execute(
                "INSERT INTO scans (started_at, status, roots, options) VALUES (?, 'running', ?, ?)",
                [_now(), json.dumps(list(self.roots)), json.dumps(options)],
            ).lastrowid

    def _write_counts(self) -> None:
        c = self.counts
        self.db.execute(
            "UPDATE scans SET seen=?, added=?, updated=?, moved=?, unchanged=?, removed=?, skipped=?,"
            " failed=?, decoded=? WHERE id=?",
            [c.seen, c.added, c.updated, c.moved, c.unchanged, c.removed, c.skipped,
             c.failed, c.decoded, self.scan_id],
        )

    def _finish_row(self, status: str) -> None:
        with self.db.atomic():
            self._write_counts()
            self.db.execute(
                "UPDATE scans SET finished_at = ?, status = ? WHERE id = ?", [_now(), status, self.scan_id]
            )

    def _report(self, status: str) -> ScanReport:
        c = self.counts
        return ScanReport(
            scan_id=self.scan_id,
            roots=self.roots,
            status=status,
            seen=c.seen,
            added=c.added,
            updated=c.updated,
            moved=c.moved,
            reused=c.reused,
            unchanged=c.unchanged,
            removed=c.removed,
            skipped=c.skipped,
            failed=c.failed,
            vanished=c.vanished,
            decoded=c.decoded,
            duration=time.monotonic() - self.started,
            workers=self.runner.workers_started,
            errors=tuple(self.errors),
            unlisted_folders=tuple(self.unlisted),
        )


def _hash_indexed(conn: sqlite3.Connection, digest: str, px_size: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM images WHERE content_hash = ? AND px_size = ? AND decoder = ? LIMIT 1",
            [digest, px_size, DECODER],
        ).fetchone()
        is not None
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# -- running read_file in worker processes -------------------------------------------------------

_worker_conn: sqlite3.Connection | None = None
_worker_px_size = 0


def _init_worker(db_path: str, px_size: int) -> None:
    """Each worker opens its own read-only connection, used to skip decoding known content."""
    global _worker_conn, _worker_px_size
    _worker_conn = store.connect_readonly(db_path)
    _worker_px_size = px_size


def _worker_read(paths: list[str]) -> list[FileResult]:
    def known(digest: str) -> bool:
        return _hash_indexed(_worker_conn, digest, _worker_px_size)

    return [read_file(path, _worker_px_size, known) for path in paths]


class _Runner:
    """Feeds tasks to worker processes with bounded work in flight; inline for small jobs.

    Workers start only once INLINE_BELOW files are waiting, so a re-scan that finds a handful
    of new files, or ``processes=1``, never pays for starting them. A batch whose worker died
    is retried file by file; a file that kills a worker twice is recorded as an error.
    """

    def __init__(self, db_path: str, px_size: int, processes: int, known_hash: Callable[[str], bool]):
        self.db_path = db_path
        self.px_size = px_size
        self.processes = processes
        self.known_hash = known_hash
        self.queue: deque[_Task] = deque()
        self.pool: WorkerPool | None = None
        self.batches: dict[int, list[_Task]] = {}
        self.suspects: set[str] = set()
        self.workers_started = 0

    def submit(self, task: _Task) -> None:
        self.queue.append(task)

    def ready(self) -> Iterator[tuple[_Task, FileResult]]:
        """Results available now; blocks only to keep the work in flight bounded."""
        if self.pool is None and self.processes > 1 and len(self.queue) >= INLINE_BELOW:
            self.pool = WorkerPool(
                self.processes, initializer=f"{__name__}:_init_worker", initargs=(self.db_path, self.px_size)
            )
            self.workers_started = self.processes
        if self.pool is None:
            if self.processes == 1:
                yield from self._inline()
            return
        self._fill()
        yield from self._collect(block=not self.pool.can_submit())

    def finish(self) -> Iterator[tuple[_Task, FileResult]]:
        if self.pool is None:
            yield from self._inline()
            return
        while self.queue or self.batches:
            self._fill()
            yield from self._collect(block=True)

    def _inline(self) -> Iterator[tuple[_Task, FileResult]]:
        while self.queue:
            task = self.queue.popleft()
            yield task, read_file(task.path, self.px_size, self.known_hash)

    def _fill(self) -> None:
        while self.queue and self.pool.can_submit():
            size = 1 if self.queue[0].path in self.suspects else TASK_BATCH
            batch = [self.queue.popleft() for _ in range(min(size, len(self.queue)))]
            self.batches[self.pool.submit(f"{__name__}:_worker_read", [t.path for t in batch])] = batch

    def _collect(self, block: bool) -> Iterator[tuple[_Task, FileResult]]:
        for outcome in self.pool.collect(block=block):
            batch = self.batches.pop(outcome.ticket)
            if outcome.error is None:
                yield from zip(batch, outcome.value)
            elif not isinstance(outcome.error, WorkerDied):
                raise outcome.error
            elif len(batch) == 1 and batch[0].path in self.suspects:
                log.warning("%s: a decoding process died on this file twice", batch[0].path)
                error = DecodeError(batch[0].path, "decoder_crashed", "the decoding process died on this file "
                                    "(a crash in the image library, or not enough memory)")
                yield batch[0], FileResult(path=batch[0].path, error=error)
            else:
                log.warning("a decoding process died; retrying its %d files one by one", len(batch))
                self.suspects.update(t.path for t in batch)
                self.queue.extendleft(reversed(batch))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
