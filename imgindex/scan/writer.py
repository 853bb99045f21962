"""Write what reading files produced into the index, in batched transactions, and count it.

Results wait in memory and are applied together, up to FLUSH_EVERY_ROWS rows or once a second,
so a scan killed anywhere loses at most that much work and never leaves a half-written file.
A file whose content is already indexed is placed without a tensor of its own making: a move
keeps its row (and id), a byte copy gets a row that reuses the stored tensor.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgindex.compare import points, tone_points
from imgindex.compare.keys import ImageKeys, signal_table
from imgindex.db.queries import store_search_keys, store_signal_keys
from imgindex.db.runs import now, update_run
from imgindex.scan.borders import TRIM
from imgindex.scan.decode import FileResult, read_file, recipes
from imgindex.scan.diff import ReadTask
from imgindex.types import ScanErrorInfo

if TYPE_CHECKING:
    from sqlite_utils import Database

FLUSH_EVERY_ROWS = 500
FLUSH_EVERY_SECONDS = 1.0
_IMAGE_COLUMNS = "path, folder, size, mtime_ns, width, height, format, content_hash, px_size, decoder, indexed_at"


@dataclass
class Counts:
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

    def as_row(self) -> dict:
        """The columns of the scans row."""
        names = ("seen", "added", "updated", "moved", "unchanged", "removed", "skipped", "failed", "decoded")
        return {name: getattr(self, name) for name in names}


class KnownRows:
    """Per scan, per content hash met: its rows not yet looked for on disk, and the row copies of
    it reuse. Forgotten whenever this scan deletes rows."""

    def __init__(self, db: Database, px_size: int):
        self.db, self.px_size = db, px_size
        self.rows: dict[tuple[str, tuple[str, ...]], deque] = {}
        self.source: dict[tuple[str, tuple[str, ...]], int] = {}

    def unchecked(self, content_hash: str, decoders: tuple[str, ...]) -> deque:
        """Rows of this content made by one of ``decoders`` (the recipes a decode of the file uses today)."""
        key = (content_hash, decoders)
        if key not in self.rows:
            marks = ", ".join("?" * len(decoders))
            rows = self.db.execute(
                f"SELECT id, path FROM images WHERE content_hash = ? AND px_size = ? AND decoder IN ({marks})"
                " ORDER BY id", [content_hash, self.px_size, *decoders],
            ).fetchall()
            if not rows:  # not kept: rows of it may be written later in this scan
                return deque()
            self.source[key] = rows[0][0]
            self.rows[key] = deque(rows)
        return self.rows[key]

    def forget(self) -> None:
        self.rows.clear()
        self.source.clear()


class IndexWriter:
    """Applies read results to one index for one scan; ``missing`` collects rows whose file was not seen."""

    def __init__(self, db: Database, px_size: int, scan_id: int):
        self.db, self.px_size, self.scan_id = db, px_size, scan_id
        self.counts = Counts()
        self.errors: list[ScanErrorInfo] = []
        self.missing: dict[int, str] = {}  # row id -> old path
        self.known = KnownRows(db, px_size)
        self.pending: list[tuple[ReadTask, FileResult]] = []
        self.forget_errors: list[str] = []  # error rows of files no longer there
        self.new_points: list[tuple[int, ImageKeys]] = []  # (image id, keys) to put in the point indexes
        self.spent = dict.fromkeys(("walk", "write", "hash", "decode", "keys"), 0.0)  # seconds (``ScanTimings``)
        self.last_flush = time.monotonic()

    def add(self, task: ReadTask, result: FileResult) -> None:
        self.pending.append((task, result))
        for step in ("hash", "decode", "keys"):
            self.spent[step] += getattr(result, f"{step}_seconds")
        if result.decoded is not None:
            self.counts.decoded += 1
        self.maybe_flush()

    def maybe_flush(self) -> None:
        due = time.monotonic() - self.last_flush >= FLUSH_EVERY_SECONDS
        if len(self.pending) >= FLUSH_EVERY_ROWS or (due and (self.pending or self.forget_errors)):
            self.flush()

    def flush(self) -> None:
        """Apply pending results in one transaction, with the counts so far."""
        pending, self.pending = self.pending, []
        forget, self.forget_errors = self.forget_errors, []
        started = self.last_flush = time.monotonic()
        with self.db.atomic():
            for path in forget:
                self.db.execute("DELETE FROM scan_errors WHERE path = ?", [path])
            for task, result in pending:
                self._apply(task, result)
            keep_points(self.db, self.px_size, self.new_points)
            self.write_counts()
        self.spent["write"] += time.monotonic() - started

    def write_counts(self) -> None:
        update_run(self.db, "scans", self.scan_id, self.counts.as_row())

    def remove(self, image_ids: set[int], error_paths: list[str]) -> None:
        """Drop the rows of files that are gone, at the end of a completed walk."""
        with self.db.atomic():
            delete_images(self.db, sorted(image_ids))
            self.known.forget()
            for path in error_paths:
                self.db.execute("DELETE FROM scan_errors WHERE path = ?", [path])
            self.counts.removed += len(image_ids)
            self.missing.clear()
            self.write_counts()

    def _apply(self, task: ReadTask, result: FileResult) -> None:
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
                self.db.execute("UPDATE images SET size = ?, mtime_ns = ? WHERE id = ?",
                                [result.size, result.mtime_ns, task.old_id])
                self.counts.unchanged += 1  # same bytes, new mtime (touched, copied over itself)
                return
            delete_images(self.db, [task.old_id])  # new content: a new row, a new id
            self.known.forget()
            self.counts.updated += 1
        else:
            self.counts.added += 1
        self.db.execute("DELETE FROM scan_errors WHERE path = ?", [task.path])
        if result.known:
            self._place_known(task, result)
        else:
            self.new_points += insert_image(self.db, task, result, self.px_size)

    def _place_again(self, task: ReadTask, result: FileResult, retry: bool) -> None:
        """A row kept from earlier was removed by another process meanwhile: read the rows again
        (and, should that fail too, decode the file itself)."""
        self.known.forget()
        if retry:
            self._decode_here(task)
        else:
            self._place_known(task, result, retry=True)

    def _place_known(self, task: ReadTask, result: FileResult, retry: bool = False) -> None:
        """Content already indexed: a move keeps its row; a copy reuses the tensor.

        A row whose file is gone (or not seen in its walked folder) makes this a move. Each row is
        checked on disk at most once a scan: a picture with a thousand copies cost a thousand
        stat calls for every new copy of it before (quadratic; a million files took hours)."""
        decoders = recipes(task.path)
        candidates = self.known.unchecked(result.content_hash, decoders)
        while candidates:
            image_id, old_path = candidates.popleft()
            if image_id in self.missing or not os.path.lexists(old_path):
                self.missing.pop(image_id, None)
                moved = self.db.execute(
                    "UPDATE images SET path = ?, folder = ?, size = ?, mtime_ns = ?, moved_at = ? WHERE id = ?",
                    [task.path, task.folder, result.size, result.mtime_ns, now(), image_id],
                ).rowcount
                if not moved:  # another process removed the row since it was read: look again
                    return self._place_again(task, result, retry)
                self._undo_added(task)
                self.counts.moved += 1
                return
        source = self.known.source.get((result.content_hash, decoders))
        if source is not None:
            if not copy_image(self.db, task, result, source):
                return self._place_again(task, result, retry)
            self.counts.reused += 1
            return
        self._decode_here(task)  # the row the worker saw went away meanwhile (its file changed)

    def _decode_here(self, task: ReadTask) -> None:
        """Decode the file in this process after all, and add it (or record why not)."""
        fresh = read_file(task.path, self.px_size)
        if fresh.decoded is not None:
            self.counts.decoded += 1
            insert_image(self.db, task, fresh, self.px_size)
            return
        self._undo_added(task)
        if fresh.error is not None:
            self._record_error(task, fresh)
        else:
            self.counts.vanished += 1

    def _undo_added(self, task: ReadTask) -> None:
        if task.old_id is None:
            self.counts.added -= 1
        else:
            self.counts.updated -= 1

    def _record_error(self, task: ReadTask, result: FileResult) -> None:
        err = result.error
        self.counts.failed += 1
        if task.old_id is not None:
            delete_images(self.db, [task.old_id])  # its old tensor no longer describes the file
            self.known.forget()
            self.counts.removed += 1
        record_error(self.db, task, result, self.scan_id)
        self.errors.append(ScanErrorInfo(task.path, err.error_class, err.reason))


def record_error(db: Database, task: ReadTask, result: FileResult, scan_id: int) -> None:
    """The file's scan_errors row: why it could not be read, and the facts it had then."""
    err = result.error
    db.execute(
        "INSERT INTO scan_errors (path, folder, error_class, message, at, size, mtime_ns, scan_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET error_class = excluded.error_class,"
        " message = excluded.message, at = excluded.at, size = excluded.size,"
        " mtime_ns = excluded.mtime_ns, scan_id = excluded.scan_id",
        [task.path, task.folder, err.error_class, err.reason, now(),
         result.size or None, result.mtime_ns or None, scan_id],
    )


def insert_image(db: Database, task: ReadTask, result: FileResult, px_size: int) -> list[tuple[int, ImageKeys]]:
    """A new row and its freshly made tensor, with the search keys made beside it; returns its
    points to keep (its id and keys), none if it came without keys."""
    d = result.decoded
    image_id = db.execute(
        f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [task.path, task.folder, result.size, result.mtime_ns, d.width, d.height, d.format,
         result.content_hash, px_size, d.decoder, now()],
    ).lastrowid
    db.execute("INSERT INTO tensors (image_id, px_size, tensor) VALUES (?, ?, ?)", [image_id, px_size, d.tensor])
    db.execute("INSERT INTO trimmed_tensors (image_id, recipe, px_size, tensor, inner_width, inner_height)"
               " VALUES (?, ?, ?, ?, ?, ?)", [image_id, TRIM, px_size, d.trimmed, *(d.inner or (None, None))])
    k = d.keys
    if k is not None:
        store_search_keys(db, [image_id], [(k.mean, k.ikey, k.coarse, k.orbits, k.sample)])
        for rank, blob in ((False, k.tone), (True, k.rank)):
            if blob is not None:
                store_signal_keys(db, *signal_table(rank), [image_id], [blob])
    return [] if k is None else [(image_id, k)]


def keep_points(db: Database, px_size: int, new_points: list[tuple[int, ImageKeys]]) -> None:
    """Put images given keys as they were written into the kept point indexes (of pixels, tone and
    rank, once each exists), as a search that made their keys would; ``new_points`` is emptied."""
    if new_points:
        ids, made = zip(*new_points)
        new_points.clear()
        features = np.frombuffer(b"".join(k.orbits for k in made), np.float32).reshape(len(ids), -1)
        points.add(db, px_size, np.asarray(ids, dtype=np.int64), features)
        for rank in (False, True):
            tone_points.add(db, rank, px_size, ids, [k.rank if rank else k.tone for k in made])


def copy_image(db: Database, task: ReadTask, result: FileResult, source_id: int) -> bool:
    """A new row for a byte copy, with the facts and tensor of the row it copies (False, and
    nothing written, when that row is gone)."""
    cursor = db.execute(
        f"INSERT INTO images ({_IMAGE_COLUMNS})"
        " SELECT ?, ?, ?, ?, width, height, format, content_hash, px_size, decoder, ? FROM images WHERE id = ?",
        [task.path, task.folder, result.size, result.mtime_ns, now(), source_id],
    )
    if cursor.rowcount != 1:
        return False
    db.execute("INSERT INTO tensors (image_id, px_size, tensor) SELECT ?, px_size, tensor FROM tensors"
               " WHERE image_id = ?", [cursor.lastrowid, source_id])
    db.execute("INSERT INTO trimmed_tensors (image_id, recipe, px_size, tensor, inner_width, inner_height)"
               " SELECT ?, recipe, px_size, tensor, inner_width, inner_height FROM trimmed_tensors WHERE image_id = ?",
               [cursor.lastrowid, source_id])
    copy_keys(db, cursor.lastrowid, source_id)
    return True


KEY_COLUMNS = {"search_keys": "mean, ikey, coarse, orbits, sample", "tone_keys": "recipe, coarse",
               "rank_keys": "recipe, coarse", "search_points": "cell, coords",
               "signal_points": "recipe, cell, coords"}


def copy_keys(db: Database, image_id: int, source_id: int) -> None:
    """A copy's search keys and kept points are those of the row whose tensor it shares."""
    for table, columns in KEY_COLUMNS.items():
        db.execute(f"INSERT OR REPLACE INTO {table} (image_id, {columns}) SELECT ?, {columns} FROM {table}"
                   f" WHERE image_id = ?", [image_id, source_id])


def delete_images(db: Database, ids: list[int]) -> None:
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        db.execute(f"DELETE FROM images WHERE id IN ({','.join('?' * len(part))})", part)
