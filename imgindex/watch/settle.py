"""Pure: file events in, batches out. When a new file is complete, and when to run a batch.

No threads, no clock, no file system of its own: the watcher passes the time and a ``stat``
function, so every rule is testable with a fake clock and fake events.

- a created, modified or moved-in file waits until its size and mtime have not changed for
  ``settle`` seconds (a file still being copied is never read half-written);
- a deleted file, or a folder created, deleted or moved, marks folders to re-list (a folder's
  own files report no events of their own when it is moved in whole);
- a batch runs when files are ready or folders are marked and events have paused for QUIET
  seconds (a whole settle period when folders appeared), or at once when MAX_BATCH files are
  ready: bursts become a few large batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from imgindex.scan.discover import under

QUIET = 0.3  # seconds without events before ready files are processed
MAX_BATCH = 2000  # ready files that start a batch even while events keep coming

FILE_CHANGED, FILE_DELETED, FILE_MOVED = "file-changed", "file-deleted", "file-moved"
FOLDER_CHANGED, FOLDER_CREATED, FOLDER_MOVED = "folder-changed", "folder-created", "folder-moved"


@dataclass(frozen=True)
class Event:
    """A file system event, as the settle logic needs it (watchdog's classes mapped by the watcher)."""

    kind: str  # FILE_CHANGED (created, modified, closed), FILE_DELETED, FILE_MOVED, FOLDER_*
    src: str
    dest: str = ""


@dataclass(frozen=True)
class Batch:
    """What one batch scans: files ready, folders to re-list alone (flat) and with subfolders (deep)."""

    ready: tuple[str, ...]
    flat: frozenset[str]
    deep: frozenset[str]


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    changed_at: float


@dataclass
class Settler:
    """The watcher's state between batches; ``wanted(path)`` says which files are the watcher's."""

    settle: float
    wanted: Callable[[str], bool]
    files: dict[str, _Pending] = field(default_factory=dict)
    flat_dirty: set[str] = field(default_factory=set)
    deep_dirty: set[str] = field(default_factory=set)
    last_event_at: float = 0.0
    folders_added: bool = False  # new folders need watches: the watcher checks the inotify limit

    def note(self, event: Event, now: float) -> None:
        """Take one event in."""
        src, dest = event.src, event.dest
        if event.kind in (FOLDER_CHANGED, FOLDER_CREATED):
            self.deep_dirty.add(src)
            self.folders_added |= event.kind == FOLDER_CREATED
        elif event.kind == FOLDER_MOVED:
            self.deep_dirty.update((src, dest))
            self.folders_added = True
        elif event.kind in (FILE_DELETED, FILE_MOVED):
            if self.wanted(src):
                self.files.pop(src, None)
                self.flat_dirty.add(os.path.dirname(src))
            if event.kind == FILE_MOVED and self.wanted(dest):
                self.files[dest] = _Pending(-1, -1, now)
        elif event.kind == FILE_CHANGED:
            if self.wanted(src):
                pending = self.files.get(src)
                if pending is None:
                    self.files[src] = _Pending(-1, -1, now)
                else:
                    pending.changed_at = now
        else:
            return
        self.last_event_at = now

    def ready(self, now: float, stat: Callable[[str], os.stat_result]) -> Batch | None:
        """The batch to run now, if any; its files leave the pending set."""
        ready = []
        for path, pending in list(self.files.items()):
            try:
                st = stat(path)
            except FileNotFoundError:
                del self.files[path]
                self.flat_dirty.add(os.path.dirname(path))
                continue
            except OSError:
                ready.append(path)  # unreadable: the scan records why
                continue
            if (st.st_size, st.st_mtime_ns) != (pending.size, pending.mtime_ns):
                pending.size, pending.mtime_ns, pending.changed_at = st.st_size, st.st_mtime_ns, now
            elif now - pending.changed_at >= self.settle:
                ready.append(path)
        if not (ready or self.flat_dirty or self.deep_dirty):
            return None
        quiet = now - self.last_event_at >= max(QUIET, self.settle if self.deep_dirty else 0)
        if not quiet and len(ready) < MAX_BATCH:
            return None
        for path in ready:
            del self.files[path]
        batch = Batch(tuple(ready), frozenset(self.flat_dirty | {os.path.dirname(p) for p in ready}),
                      frozenset(self.deep_dirty))
        self.flat_dirty, self.deep_dirty = set(), set()
        return batch


def wanted_by(roots: Iterable[str], extensions: frozenset[str] | None, ignored: Iterable[str]) -> Callable[[str], bool]:
    """A file the watcher follows: under a root, not the index's own files, with an image extension."""
    roots, ignored = tuple(roots), frozenset(ignored)

    def wanted(path: str) -> bool:
        if path in ignored or not any(under(os.path.dirname(path), r) for r in roots):
            return False
        return extensions is None or os.path.splitext(path)[1].lower() in extensions

    return wanted


def scan_folders(batch: Batch, roots: Iterable[str]) -> tuple[list[str], set[str]]:
    """(folders to scan, of which the flat ones): deep folders first, all under a root, flat minus deep."""
    roots = tuple(roots)
    deep = {d for d in batch.deep if any(under(d, r) for r in roots)}
    flat = {f for f in batch.flat - deep if any(under(f, r) for r in roots)}
    return sorted(deep) + sorted(flat), flat
