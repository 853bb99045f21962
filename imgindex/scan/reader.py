"""Read files (hash, then decode unless the content is known) here or in worker processes.

Workers open their own read-only connection, used only to skip decoding content already
indexed; the main process passes its own. Workers start only once INLINE_BELOW files are
waiting, so a re-scan that finds a handful of new files never pays for starting them.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, replace

import numpy as np

from imgindex.compare import keys

from imgindex.db.connect import connect_readonly
from imgindex.db.queries import hash_indexed
from imgindex.errors import DecodeError
from imgindex.scan.decode import FileResult, read_file
from imgindex.scan.diff import ReadTask
from imgindex.workers import BatchRunner

log = logging.getLogger(__name__)

TASK_BATCH = 8  # work units (about files) per worker task: amortises inter-process overhead
INLINE_BELOW = 32  # less work than this (about 32 ordinary photos) is not worth starting processes
WORK_BYTES = 500_000  # a file counts one unit more for every this many bytes: a 3 MB HEIC, seven


def work(task: ReadTask) -> int:
    """Reading cost in units of an ordinary JPEG: a handful of 12-MP HEICs is worth two cores."""
    return 1 + task.size // WORK_BYTES


@dataclass(frozen=True)
class ReadContext:
    """What a reading process keeps: a connection to ask whether a content is known, and the size."""

    conn: sqlite3.Connection
    px_size: int

    def known(self, digest: str, decoders: tuple[str, ...]) -> bool:
        return hash_indexed(self.conn, digest, self.px_size, decoders)


def open_context(db_path: str, px_size: int) -> ReadContext:
    """A worker's context: its own read-only connection."""
    return ReadContext(connect_readonly(db_path), px_size)


def read_batch(context: ReadContext, tasks: list[ReadTask]) -> list[FileResult]:
    return with_keys([read_file(task.path, context.px_size, context.known) for task in tasks], context.px_size)


def with_keys(results: list[FileResult], px_size: int) -> list[FileResult]:
    """The results, each decoded one with its search keys (``compare.keys``), made together on this
    core: a search then reads them instead of every tensor. Keys that cannot be made are left to
    the search, which makes what is missing; the decode is never lost for them."""
    done = [k for k, r in enumerate(results) if r.decoded is not None]
    if not done:
        return results
    started = time.process_time()
    try:
        tensors = np.frombuffer(b"".join(results[k].decoded.tensor for k in done), np.uint8)
        made = keys.of_tensors(tensors.reshape(len(done), px_size, px_size, 3), px_size)
    except Exception:  # pragma: no cover - a numpy failure; the search makes these keys instead
        log.exception("could not make the search keys of %d decoded files", len(done))
        return results
    share = (time.process_time() - started) / len(done)
    out = list(results)
    for k, image_keys in zip(done, made):
        out[k] = replace(results[k], decoded=replace(results[k].decoded, keys=image_keys), keys_seconds=share)
    return out


def crashed(task: ReadTask) -> FileResult:
    """The result of a file that killed a decoding process twice."""
    log.warning("%s: a decoding process died on this file twice", task.path)
    error = DecodeError(task.path, "decoder_crashed", "the decoding process died on this file "
                        "(a crash in the image library, or not enough memory)")
    return FileResult(path=task.path, error=error)


def reader(conn: sqlite3.Connection, db_path: str, px_size: int, processes: int) -> BatchRunner:
    """A runner of ``read_batch`` over ReadTasks: here (with ``conn``) for small jobs, else in workers."""
    return BatchRunner(read_batch, processes=processes, context=ReadContext(conn, px_size),
                       initializer=open_context, initargs=(db_path, px_size), batch_work=TASK_BATCH,
                       fan_out_at=INLINE_BELOW, on_crash=crashed)
