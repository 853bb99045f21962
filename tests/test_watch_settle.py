"""The watcher's settle logic is pure: fake events, a fake clock and a fake file system."""

from __future__ import annotations

import os
from types import SimpleNamespace

from imgindex.watch.settle import (
    FILE_CHANGED,
    FILE_DELETED,
    FILE_MOVED,
    FOLDER_CREATED,
    FOLDER_MOVED,
    MAX_BATCH,
    QUIET,
    Event,
    Settler,
    scan_folders,
    wanted_by,
)

ROOT = "/photos"
SETTLE = 2.0


class FakeDisk:
    """path -> (size, mtime_ns); a missing path raises FileNotFoundError, one in ``unreadable`` OSError."""

    def __init__(self):
        self.files: dict[str, tuple[int, int]] = {}
        self.unreadable: set[str] = set()

    def stat(self, path: str):
        if path in self.unreadable:
            raise PermissionError(path)
        if path not in self.files:
            raise FileNotFoundError(path)
        size, mtime_ns = self.files[path]
        return SimpleNamespace(st_size=size, st_mtime_ns=mtime_ns)


def settler() -> Settler:
    return Settler(SETTLE, wanted_by([ROOT], frozenset({".jpg"}), {f"{ROOT}/index.db"}))


def test_a_file_is_ready_only_after_its_size_and_mtime_held_still_for_the_settle_time():
    disk, s = FakeDisk(), settler()
    path = f"{ROOT}/a.jpg"
    disk.files[path] = (10, 1)
    s.note(Event(FILE_CHANGED, path), now=0.0)
    assert s.ready(0.5, disk.stat) is None  # first look: facts recorded, the clock starts
    disk.files[path] = (20, 2)  # still being copied
    assert s.ready(2.4, disk.stat) is None  # it changed: the clock starts again at 2.4
    assert s.ready(4.3, disk.stat) is None  # 1.9 s still
    batch = s.ready(4.5, disk.stat)
    assert batch is not None and batch.ready == (path,) and batch.flat == {ROOT} and batch.deep == frozenset()
    assert s.files == {} and s.ready(10.0, disk.stat) is None  # handed out once


def test_events_keep_a_batch_waiting_until_they_pause_unless_many_files_are_ready():
    disk, s = FakeDisk(), settler()
    for k in range(3):
        path = f"{ROOT}/{k}.jpg"
        disk.files[path] = (1, 1)
        s.note(Event(FILE_CHANGED, path), now=0.0)
    s.ready(0.0, disk.stat)
    s.note(Event(FILE_CHANGED, f"{ROOT}/late.jpg"), now=SETTLE)  # another file arrives: not quiet yet
    assert s.ready(SETTLE + QUIET / 2, disk.stat) is None
    batch = s.ready(SETTLE + QUIET + 0.01, disk.stat)
    assert batch is not None and len(batch.ready) == 3  # late.jpg is not on disk yet: it just leaves
    many = settler()
    for k in range(MAX_BATCH):
        path = f"{ROOT}/m{k}.jpg"
        disk.files[path] = (1, 1)
        many.note(Event(FILE_CHANGED, path), now=0.0)
    many.ready(0.0, disk.stat)
    many.note(Event(FILE_CHANGED, f"{ROOT}/still-coming.jpg"), now=SETTLE)
    batch = many.ready(SETTLE, disk.stat)  # events go on, but MAX_BATCH files are ready
    assert batch is not None and len(batch.ready) == MAX_BATCH


def test_deleted_and_moved_files_mark_folders_and_moved_in_files_settle():
    disk, s = FakeDisk(), settler()
    s.note(Event(FILE_DELETED, f"{ROOT}/old/gone.jpg"), now=0.0)
    disk.files[f"{ROOT}/new/b.jpg"] = (5, 5)
    s.note(Event(FILE_MOVED, f"{ROOT}/old/b.jpg", f"{ROOT}/new/b.jpg"), now=0.0)
    s.ready(0.0, disk.stat)
    batch = s.ready(SETTLE, disk.stat)
    assert batch.ready == (f"{ROOT}/new/b.jpg",)
    assert batch.flat == {f"{ROOT}/old", f"{ROOT}/new"}


def test_a_folder_moved_in_waits_a_whole_settle_period_and_is_scanned_deep():
    disk, s = FakeDisk(), settler()
    s.note(Event(FOLDER_MOVED, "/elsewhere/album", f"{ROOT}/album"), now=0.0)
    assert s.folders_added
    assert s.ready(QUIET, disk.stat) is None  # its files send no events: give them the settle time
    batch = s.ready(SETTLE, disk.stat)
    assert batch.deep == {"/elsewhere/album", f"{ROOT}/album"} and batch.ready == ()
    folders, flat = scan_folders(batch, [ROOT])
    assert folders == [f"{ROOT}/album"] and flat == set()  # outside the roots: not scanned


def test_unwanted_paths_are_ignored_and_unreadable_files_are_handed_to_the_scan():
    disk, s = FakeDisk(), settler()
    for path in (f"{ROOT}/notes.txt", f"{ROOT}/index.db", "/other/x.jpg"):
        s.note(Event(FILE_CHANGED, path), now=0.0)
    assert s.files == {} and s.ready(SETTLE, disk.stat) is None
    locked = f"{ROOT}/locked.jpg"
    disk.unreadable.add(locked)
    s.note(Event(FILE_CHANGED, locked), now=0.0)
    assert s.ready(QUIET, disk.stat).ready == (locked,)  # the scan records why it cannot be read


def test_scan_folders_puts_deep_folders_first_and_drops_flat_ones_inside_them():
    s = settler()
    s.note(Event(FOLDER_CREATED, f"{ROOT}/a"), now=0.0)
    s.note(Event(FILE_DELETED, f"{ROOT}/z.jpg"), now=0.0)
    s.note(Event(FILE_DELETED, f"{ROOT}/a/x.jpg"), now=0.0)
    batch = s.ready(SETTLE, FakeDisk().stat)
    folders, flat = scan_folders(batch, [ROOT])
    assert folders == [f"{ROOT}/a", ROOT] and flat == {ROOT}
    assert os.path.dirname(f"{ROOT}/a/x.jpg") not in flat
