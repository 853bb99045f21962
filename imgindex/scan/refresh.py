"""Fill in what a decode makes beyond the tensor for images indexed before it did: their trimmed
tensors (``borders.content_box``), so an old index gets the ``trimmed`` signal without a new index.

Flows in: the images (under some roots, or all) with no ``trimmed_tensors`` row of this recipe.
Flows out: their rows, written in batched transactions as workers decode the files again (an
interrupted refresh keeps what it wrote, and the next one goes on from there). A file that
changed since its row was written, or that its tensor's recipe no longer makes (a RAW whose
preview is read now), is left alone: the next scan reads it anew, trimmed included.
Nothing else in the index changes: ids, tensors, pairs and groups stay as they are; a framed
picture is marked for the next search to compare again (``moved_at``, as a moved image is).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgindex.db.runs import now
from imgindex.scan.borders import TRIM
from imgindex.scan.decode import decode_path
from imgindex.scan.discover import under
from imgindex.types import RefreshProgress, RefreshReport
from imgindex.workers import BatchRunner, resolve_processes

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlite_utils import Database

BATCH = 500  # rows per transaction


@dataclass(frozen=True)
class Stale:
    image_id: int
    path: str
    size: int
    mtime_ns: int
    decoder: str


def stale(db: Database, px_size: int, roots: tuple[str, ...] = ()) -> list[Stale]:
    """The images under ``roots`` (or all) without a trimmed tensor row of this recipe and size."""
    rows = db.execute(
        "SELECT i.id, i.path, i.folder, i.size, i.mtime_ns, i.decoder FROM images i WHERE NOT EXISTS (SELECT 1 FROM"
        " trimmed_tensors t WHERE t.image_id = i.id AND t.recipe = ? AND t.px_size = ?) ORDER BY i.id",
        [TRIM, px_size]).fetchall()
    inside = {f: not roots or any(under(f, r) for r in roots) for f in {r[2] for r in rows}}
    return [Stale(i, path, size, mtime, decoder) for i, path, folder, size, mtime, decoder in rows if inside[folder]]


def trimmed_of(batch: list[Stale], px_size: int) -> list[tuple | bool]:
    """Each file's (trimmed tensor, inner size) (None, None: no borders), or False when it changed
    since it was indexed, cannot be read now, or is made by another recipe now (the next scan deals
    with it). Runs in workers."""
    out: list[tuple | bool] = []
    for item in batch:
        try:
            st = os.stat(item.path)
            if (st.st_size, st.st_mtime_ns) != (item.size, item.mtime_ns):
                out.append(False)
                continue
            decoded = decode_path(item.path, px_size)
            out.append((decoded.trimmed, decoded.inner) if decoded.decoder == item.decoder else False)
        except Exception:  # any file that does not decode now: left for the next scan to classify
            out.append(False)
    return out


def refresh(db: Database, px_size: int, roots: tuple[str, ...] = (), *, processes: int | None = None,
            progress: Callable[[RefreshProgress], None] | None = None) -> RefreshReport:
    """Decode again the images without a trimmed tensor, and keep what borders they have."""
    started = time.monotonic()
    todo = stale(db, px_size, tuple(os.path.abspath(r) for r in roots))
    runner = BatchRunner(trimmed_of, processes=resolve_processes(processes), args=(px_size,), batch_work=8,
                         fan_out_at=32)
    rows, framed, skipped, done = [], 0, 0, 0
    for item, result in runner.map((s, 1) for s in todo):
        done += 1
        if result is False:
            skipped += 1
        else:
            tensor, inner = result
            framed += tensor is not None
            rows.append((item.image_id, TRIM, px_size, tensor, *(inner or (None, None))))
        if len(rows) >= BATCH:
            _write(db, rows)
            rows = []
        if progress is not None:
            progress(RefreshProgress(done, len(todo), time.monotonic() - started))
    _write(db, rows)
    return RefreshReport(len(todo), framed, skipped, time.monotonic() - started)


def _write(db: Database, rows: list[tuple]) -> None:
    """Rows of images still in the index (a scan beside this one may have removed some)."""
    if not rows:
        return
    stamp = now()
    with db.atomic():
        db.conn.executemany(
            "INSERT OR REPLACE INTO trimmed_tensors (image_id, recipe, px_size, tensor, inner_width, inner_height)"
            " SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM images WHERE id = ?)",
            [(*r, r[0]) for r in rows])
        # a framed picture has pairs to find now: the next (incremental) search compares it again, as
        # it does a moved image
        db.conn.executemany("UPDATE images SET moved_at = ? WHERE id = ?",
                            [(stamp, r[0]) for r in rows if r[3] is not None])
