"""Keep an index and its matches current while files come and go: watchdog events -> batches.

Handlers only queue events; one loop (in the caller's thread) turns them into batches:

- a created, modified or moved-in file waits until its size and mtime have not changed for
  ``settle`` seconds (a file still being copied is never read half-written);
- a deleted file, or a folder created, deleted or moved, marks folders to re-list;
- when files are ready and events have paused (or many are ready), one batch runs: an
  incremental scan of just those folders (moves are recognised by content, not re-decoded),
  then an incremental search (the new images against all). Bursts become a few large batches.
- Events the OS drops (inotify queue overflow) are noticed through watchdog's warning and
  answered with a catch-up scan of every root; without inotify watches left, the watcher polls.

One watcher per index: a row in the ``watcher`` table, taken in an IMMEDIATE transaction and
checked against the live process, is the lock. A watcher killed with SIGKILL leaves a stale row
that the next one replaces; the index itself is consistent (every batch is transactional) and
the start-up catch-up scan repairs whatever the dead one did not finish.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from imgindex import discover, indexer
from imgindex.errors import ImgIndexError
from imgindex.index import Index
from imgindex.pids import alive as watcher_alive
from imgindex.pids import process_start

log = logging.getLogger(__name__)

QUIET = 0.3  # seconds without events before ready files are processed
MAX_BATCH = 2000  # ready files that start a batch even while events keep coming
HEARTBEAT = 5.0
WATCH_CHECK = 30.0  # after folders appear, at most this often: check every folder has an inotify watch


class WatchLockError(ImgIndexError):
    """Another watcher is running on this index."""


@dataclass(frozen=True)
class BatchReport:
    """What one batch did: for the log line, and for tests."""

    reason: str
    added: int
    updated: int
    moved: int
    removed: int
    failed: int
    new_pairs: int
    pairs: int
    groups: int
    duration: float


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    changed_at: float


@dataclass
class _State:
    files: dict[str, _Pending] = field(default_factory=dict)
    flat_dirty: set[str] = field(default_factory=set)
    deep_dirty: set[str] = field(default_factory=set)
    last_event_at: float = 0.0


class _Lock:
    def __init__(self, index: Index, roots: tuple[str, ...]):
        self.index = index
        self.roots = roots

    def acquire(self) -> None:
        db = self.index.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT pid, process_start, host, started_at FROM watcher WHERE id = 1").fetchone()
            if row and (row[2] != socket.gethostname() or watcher_alive(row[0], row[1])):
                raise WatchLockError(
                    f"Another watcher (pid {row[0]} on {row[2]}, since {row[3]}) is already watching "
                    f"{self.index.path}. Stop it first; readers (search, sqlite3) can use the index meanwhile."
                )
            now = _now()
            db.execute("DELETE FROM watcher")
            db.execute(
                "INSERT INTO watcher (id, pid, process_start, host, roots, started_at, heartbeat_at)"
                " VALUES (1, ?, ?, ?, ?, ?, ?)",
                [os.getpid(), process_start(os.getpid()), socket.gethostname(), json.dumps(list(self.roots)), now, now],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def heartbeat(self, pending: int, batch: BatchReport | None = None) -> None:
        with self.index.db.atomic():
            if batch is None:
                self.index.db.execute(
                    "UPDATE watcher SET heartbeat_at = ?, pending = ? WHERE pid = ?", [_now(), pending, os.getpid()]
                )
            else:
                self.index.db.execute(
                    "UPDATE watcher SET heartbeat_at = ?, pending = ?, batches = batches + 1, last_batch_at = ?,"
                    " last_batch = ? WHERE pid = ?",
                    [_now(), pending, _now(), json.dumps(batch.__dict__), os.getpid()],
                )

    def release(self) -> None:
        with self.index.db.atomic():
            self.index.db.execute("DELETE FROM watcher WHERE pid = ?", [os.getpid()])


class _Queueing(FileSystemEventHandler):
    """Only queues: all work happens in the watcher's loop."""

    def __init__(self, events: queue.Queue):
        self.events = events

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.events.put(event)


class _OverflowAlarm(logging.Handler):
    """watchdog reports a kernel queue overflow only as a log warning: turn it into a flag."""

    def __init__(self, flag: threading.Event):
        super().__init__(logging.WARNING)
        self.flag = flag

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.flag.set()


class Watcher:
    """Watch ``roots`` for ``index``; ``run(stop)`` returns after ``stop`` is set and the batch in hand is done."""

    def __init__(
        self,
        index: Index,
        roots,
        *,
        settle: float = 2.0,
        similarity: str | float = "duplicates",
        rotate: bool = True,
        mirror: bool = False,
        same_dim: bool = True,
        limit_extensions: bool = True,
        px_size: int | None = None,
        processes: int | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
    ):
        if settle < 0:
            raise ImgIndexError("settle must be >= 0 seconds.")
        self.index = index
        self.roots = tuple(dict.fromkeys(discover.normalise_root(r) for r in roots))
        self.settle = settle
        self.search_options = dict(similarity=similarity, rotate=rotate, mirror=mirror, same_dim=same_dim)
        px_size = px_size or index.px_size or 50  # by default, whatever the index was built with
        self.scan_options = dict(limit_extensions=limit_extensions, px_size=px_size, processes=processes)
        self.processes = processes
        self.on_batch = on_batch or (lambda report: None)
        self.extensions = discover.image_extensions() if limit_extensions else None
        db = os.fspath(index.path)
        self.ignored = {db, db + "-wal", db + "-shm", db + "-journal"}
        self.state = _State()
        self.events: queue.Queue = queue.Queue()
        self.overflow = threading.Event()
        self.folders_added = False  # new folders need watches: check the limit was not hit

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        lock = _Lock(self.index, self.roots)
        lock.acquire()
        alarm = _OverflowAlarm(self.overflow)
        watchdog_log = logging.getLogger("watchdog")
        watchdog_log.addHandler(alarm)
        observer = None
        try:
            observer = self._start_observer()
            self._catch_up("start: changes while not watching", lock)
            last_beat = last_check = time.monotonic()
            while not stop.is_set():
                recheck = self.folders_added and time.monotonic() - last_check >= WATCH_CHECK
                if recheck and isinstance(observer, Observer):
                    last_check, self.folders_added = time.monotonic(), False
                    if self._unwatched_folders():  # new folders beyond the limit: poll, and catch up
                        observer = self._poll_instead(observer, "the inotify watch limit was reached")
                        self._catch_up("catch-up: folders were not watched", lock)
                self._drain(timeout=0.2)
                if self.overflow.is_set():
                    self.overflow.clear()
                    log.warning("the OS dropped file events (inotify queue overflow): catching up with a scan")
                    self._catch_up("catch-up: events were lost", lock)
                batch = self._ready(time.monotonic())
                if batch is not None:
                    lock.heartbeat(len(self.state.files), self._process(*batch))
                    last_beat = time.monotonic()
                elif time.monotonic() - last_beat >= HEARTBEAT:
                    lock.heartbeat(len(self.state.files))
                    last_beat = time.monotonic()
        finally:
            watchdog_log.removeHandler(alarm)
            if observer is not None:
                observer.stop()
                observer.join(timeout=10)
            lock.release()

    def _start_observer(self):
        observer = Observer()
        try:
            self._schedule(observer)
            observer.start()
        except OSError as exc:  # typically ENOSPC: the inotify watch limit is reached
            return self._poll_instead(None, f"cannot watch with inotify ({exc})")
        short = self._unwatched_folders()
        if short:
            # watchdog skips, without a word, the subfolders it could not add a watch for
            return self._poll_instead(observer, f"the inotify watch limit left {short} folder(s) unwatched")
        return observer

    def _schedule(self, observer) -> None:
        handler = _Queueing(self.events)
        for root in self.roots:
            observer.schedule(handler, root, recursive=True)

    def _poll_instead(self, observer, why: str):
        log.warning("%s (raise fs.inotify.max_user_watches): polling every 2 s instead", why)
        if observer is not None:
            observer.stop()
            observer.join(timeout=10)
        polling = PollingObserver(timeout=2)
        self._schedule(polling)
        polling.start()
        return polling

    def _unwatched_folders(self) -> int:
        """Folders under the roots minus inotify watches this process holds (Linux; else 0)."""
        watches = inotify_watch_count()
        if watches is None:
            return 0
        folders = sum(1 for root in self.roots for _ in os.walk(root))
        return max(0, folders - watches)

    # -- events -> state ----------------------------------------------------------------------------
    def _drain(self, timeout: float) -> None:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._note(event)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _note(self, event: FileSystemEvent) -> None:
        now = time.monotonic()
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        state = self.state
        if isinstance(event, (DirCreatedEvent, DirDeletedEvent)):
            state.deep_dirty.add(src)
            self.folders_added |= isinstance(event, DirCreatedEvent)
        elif isinstance(event, DirMovedEvent):
            state.deep_dirty.update((src, dest))
            self.folders_added = True
        elif isinstance(event, FileDeletedEvent):
            if self._wanted(src):
                state.files.pop(src, None)
                state.flat_dirty.add(os.path.dirname(src))
        elif isinstance(event, FileMovedEvent):
            if self._wanted(src):
                state.files.pop(src, None)
                state.flat_dirty.add(os.path.dirname(src))
            if self._wanted(dest):
                state.files[dest] = _Pending(-1, -1, now)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent, FileClosedEvent)):
            if self._wanted(src):
                pending = state.files.get(src)
                if pending is None:
                    state.files[src] = _Pending(-1, -1, now)
                else:
                    pending.changed_at = now
        else:
            return
        state.last_event_at = now

    def _wanted(self, path: str) -> bool:
        if path in self.ignored or not any(discover.under(os.path.dirname(path), r) for r in self.roots):
            return False
        return self.extensions is None or os.path.splitext(path)[1].lower() in self.extensions

    def _ready(self, now: float):
        """The batch to run now, if any: (ready files, folders to re-list flat, folders to re-list deep)."""
        state = self.state
        ready = []
        for path, pending in list(state.files.items()):
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                del state.files[path]
                state.flat_dirty.add(os.path.dirname(path))
                continue
            except OSError:
                ready.append(path)  # unreadable: the scan records why
                continue
            if (st.st_size, st.st_mtime_ns) != (pending.size, pending.mtime_ns):
                pending.size, pending.mtime_ns, pending.changed_at = st.st_size, st.st_mtime_ns, now
            elif now - pending.changed_at >= self.settle:
                ready.append(path)
        if not (ready or state.flat_dirty or state.deep_dirty):
            return None
        # wait for a pause in the events (a whole settle period when folders appeared or moved,
        # whose files report no events of their own), unless many files are ready already
        quiet = now - state.last_event_at >= max(QUIET, self.settle if state.deep_dirty else 0)
        if not quiet and len(ready) < MAX_BATCH:
            return None
        for path in ready:
            del state.files[path]
        flat, deep = state.flat_dirty | {os.path.dirname(p) for p in ready}, state.deep_dirty
        state.flat_dirty, state.deep_dirty = set(), set()
        return ready, flat, deep

    # -- batches --------------------------------------------------------------------------------
    def _process(self, ready: list[str], flat: set[str], deep: set[str]) -> BatchReport:
        started = time.monotonic()
        deep = {d for d in deep if any(discover.under(d, r) for r in self.roots)}
        flat = {f for f in flat - deep if any(discover.under(f, r) for r in self.roots)}
        roots = sorted(deep) + sorted(flat)
        if not roots:
            return self._report("events outside the watched folders", None, None, started)
        scan = indexer.scan(
            self.index.db,
            str(self.index.path),
            roots,
            flat_roots=flat,
            skip_paths=set(self.state.files),
            missing_ok=True,
            **self.scan_options,
        )
        found = self.index.search(processes=self.processes, **self.search_options)
        return self._report(f"{len(ready)} file(s) settled, {len(roots)} folder(s)", scan, found, started)

    def _catch_up(self, reason: str, lock: _Lock) -> None:
        started = time.monotonic()
        scan = self.index.scan(list(self.roots), **self.scan_options)
        found = self.index.search(processes=self.processes, **self.search_options)
        lock.heartbeat(len(self.state.files), self._report(reason, scan, found, started))

    def _report(self, reason, scan, found, started) -> BatchReport:
        report = BatchReport(
            reason=reason,
            added=scan.added if scan else 0,
            updated=scan.updated if scan else 0,
            moved=scan.moved if scan else 0,
            removed=scan.removed if scan else 0,
            failed=len(scan.errors) if scan else 0,
            new_pairs=found.new_pairs if found else 0,
            pairs=found.pairs if found else 0,
            groups=found.groups if found else 0,
            duration=time.monotonic() - started,
        )
        self.on_batch(report)
        return report


def inotify_watch_count() -> int | None:
    """How many inotify watches this process holds, from /proc/self/fdinfo; None where unknown."""
    try:
        fds = os.listdir("/proc/self/fdinfo")
    except OSError:
        return None
    total = 0
    for fd in fds:
        try:
            with open(f"/proc/self/fdinfo/{fd}") as fp:
                total += fp.read().count("inotify wd:")
        except OSError:
            continue
    return total


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
