"""Thumbnails for the report, made from the original files: one per distinct content.

Byte copies share one thumbnail (keyed by content hash), made from the first of their paths
that still reads; an original that is gone or unreadable gets the reason instead, shown in its
place. Decoding is the slow part of a report, so many thumbnails fan out to worker processes
through ``BatchRunner``; a few are made here, where starting workers would cost more.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from imgindex.errors import ImgIndexError
from imgindex.scan.decode import thumbnail_jpeg
from imgindex.workers import BatchRunner, WorkerDied, resolve_processes

THUMB_BATCH = 32
INLINE_THUMBS = 200  # fewer than this: no worker processes
MISSING = "missing: the original is no longer there"

Thumb = tuple[str | None, str]  # (base64 JPEG, '') or (None, why there is none)


def make_thumbnails(wanted: dict[str, list[str]], size: int, *, processes: int | None,
                    progress: Callable[[int, int], None]) -> dict[str, Thumb]:
    """content hash -> its thumbnail, for every content hash in ``wanted`` (hash -> the paths that hold it)."""
    items = sorted(wanted.items(), key=lambda kv: kv[1])
    runner = BatchRunner(thumbnails, processes=resolve_processes(processes), args=(size,), batch_work=THUMB_BATCH,
                         fan_out_at=INLINE_THUMBS)
    out: dict[str, Thumb] = {}
    try:
        for (digest, _), thumb in runner.map((item, 1) for item in items):
            out[digest] = thumb
            progress(len(out), len(items))
    except WorkerDied as exc:
        raise ImgIndexError(f"a thumbnail worker failed: {exc}") from exc
    return out


def thumbnails(batch: list[tuple[str, list[str]]], size: int) -> list[Thumb]:
    """One thumbnail per (content hash, its paths), from the first path that reads; runs in workers."""
    return [_thumbnail(paths, size) for _, paths in batch]


def _thumbnail(paths: list[str], size: int) -> Thumb:
    """The first path that reads gives the thumbnail; else the last reason a path could not (or: missing)."""
    why = MISSING
    for path in paths:
        try:
            return base64.b64encode(thumbnail_jpeg(path, size)).decode("ascii"), ""
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - any unreadable original is shown as such, never a crash
            why = f"cannot be shown: {type(exc).__name__}: {exc}"
    return None, why
