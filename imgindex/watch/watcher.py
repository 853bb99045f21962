"""Keep an index and its matches current while files come and go: watchdog events -> batches.

Handlers only queue events; one loop (in the caller's thread) feeds them to the ``Settler`` and
runs each batch it hands out: a scan of just the touched folders through the facade (moves
are recognised by content, not re-decoded), then an incremental search (the new images
against all). Events the OS drops (inotify queue overflow) are noticed through watchdog's
warning and answered with a catch-up scan of every root; without inotify watches left, the
watcher polls. The index is consistent whenever the watcher dies (every batch is
transactional), and the start-up catch-up scan repairs whatever a dead one did not finish.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

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

from imgindex.errors import ImgIndexError
from imgindex.scan import discover
from imgindex.types import BatchReport, ScanReport, ScanScope, SearchReport
from imgindex.watch import settle as settle_module
from imgindex.watch.lock import WatchLock

if TYPE_CHECKING:
    from pathlib import Path

    from sqlite_utils import Database

log = logging.getLogger(__name__)

HEARTBEAT = 5.0
WATCH_CHECK = 30.0  # after folders appear, at most this often: check every folder has an inotify watch


class Indexed(Protocol):
    """What the watcher needs of the facade (``imgindex.Index``)."""

    path: Path
    db: Database
    px_size: int | None

    def scan_scope(self, scope: ScanScope, **options) -> ScanReport: ...

    def search(self, **options) -> SearchReport: ...


_KINDS = (  # watchdog's event classes -> the settle logic's kinds; the first match wins
    ((DirCreatedEvent,), settle_module.FOLDER_CREATED),
    ((DirDeletedEvent,), settle_module.FOLDER_CHANGED),
    ((DirMovedEvent,), settle_module.FOLDER_MOVED),
    ((FileDeletedEvent,), settle_module.FILE_DELETED),
    ((FileMovedEvent,), settle_module.FILE_MOVED),
    ((FileCreatedEvent, FileModifiedEvent, FileClosedEvent), settle_module.FILE_CHANGED),
)


def to_event(event: FileSystemEvent) -> settle_module.Event | None:
    """A watchdog event as the settle logic sees it (None: an event it ignores)."""
    for classes, kind in _KINDS:
        if isinstance(event, classes):
            return settle_module.Event(kind, os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or ""))
    return None


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

    def __init__(self, index: Indexed, roots, *, settle: float = 2.0, similarity: str | float | None = None,
                 rotate: bool | None = None, mirror: bool | None = None, same_dim: bool | None = None,
                 keep: str | None = None, prefer_folders=None, save_profile: bool = False,
                 limit_extensions: bool = True, px_size: int | None = None, processes: int | None = None,
                 on_batch: Callable[[BatchReport], None] | None = None, on_start: Callable[[], object] | None = None,
                 signals: str | None = None):
        """Search settings left at None are the index's profile's, read again for every batch.
        ``on_start`` runs after the first scan, before the first search (reference folders are set there)."""
        if settle < 0:
            raise ImgIndexError("settle must be >= 0 seconds.")
        self.index = index
        self.roots = tuple(dict.fromkeys(discover.normalise_root(r) for r in roots))
        self.search_options = dict(similarity=similarity, rotate=rotate, mirror=mirror, same_dim=same_dim, keep=keep,
                                   prefer_folders=prefer_folders, save_profile=save_profile, processes=processes,
                                   signals=signals)
        px_size = px_size or index.px_size or 50  # by default, whatever the index was built with
        self.scan_options = dict(limit_extensions=limit_extensions, px_size=px_size, processes=processes)
        self.on_batch = on_batch or (lambda report: None)
        self.on_start = on_start or (lambda: None)
        db = os.fspath(index.path)
        extensions = discover.image_extensions() if limit_extensions else None
        wanted = settle_module.wanted_by(self.roots, extensions, {db, db + "-wal", db + "-shm", db + "-journal"})
        self.state = settle_module.Settler(settle, wanted)
        self.events: queue.Queue = queue.Queue()
        self.overflow = threading.Event()

    def run(self, stop: threading.Event) -> None:
        lock = WatchLock(self.index.db, str(self.index.path), self.roots)
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
                recheck = self.state.folders_added and time.monotonic() - last_check >= WATCH_CHECK
                if recheck and isinstance(observer, Observer):
                    last_check, self.state.folders_added = time.monotonic(), False
                    if self._unwatched_folders():  # new folders beyond the limit: poll, and catch up
                        observer = self._poll_instead(observer, "the inotify watch limit was reached")
                        self._catch_up("catch-up: folders were not watched", lock)
                self._drain(timeout=0.2)
                if self.overflow.is_set():
                    self.overflow.clear()
                    log.warning("the OS dropped file events (inotify queue overflow): catching up with a scan")
                    self._catch_up("catch-up: events were lost", lock)
                batch = self.state.ready(time.monotonic(), lambda p: os.stat(p, follow_symlinks=False))
                if batch is not None:
                    lock.heartbeat(len(self.state.files), self._process(batch))
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

    def _drain(self, timeout: float) -> None:
        try:
            raw = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            event = to_event(raw)
            if event is not None:
                self.state.note(event, time.monotonic())
            try:
                raw = self.events.get_nowait()
            except queue.Empty:
                return

    def _process(self, batch: settle_module.Batch) -> BatchReport:
        started = time.monotonic()
        folders, flat = settle_module.scan_folders(batch, self.roots)
        if not folders:
            return self._report("events outside the watched folders", None, None, started)
        scope = ScanScope(tuple(folders), flat=frozenset(flat), skip_paths=frozenset(self.state.files),
                          missing_ok=True)
        scan = self.index.scan_scope(scope, **self.scan_options)
        found = self.index.search(**self.search_options)
        return self._report(f"{len(batch.ready)} file(s) settled, {len(folders)} folder(s)", scan, found, started)

    def _catch_up(self, reason: str, lock: WatchLock) -> None:
        started = time.monotonic()
        scan = self.index.scan_scope(ScanScope(self.roots), **self.scan_options)
        self.on_start()
        self.on_start = lambda: None
        found = self.index.search(**self.search_options)
        lock.heartbeat(len(self.state.files), self._report(reason, scan, found, started))

    def _report(self, reason, scan, found, started) -> BatchReport:
        report = BatchReport(
            reason=reason, added=scan.added if scan else 0, updated=scan.updated if scan else 0,
            moved=scan.moved if scan else 0, removed=scan.removed if scan else 0,
            failed=len(scan.errors) if scan else 0, new_pairs=found.new_pairs if found else 0,
            pairs=found.pairs if found else 0, groups=found.groups if found else 0,
            duration=time.monotonic() - started, off_profile=found.off_profile if found else (),
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
