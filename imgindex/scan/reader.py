"""Read files (hash, then decode unless the content is known) here or in worker processes.

Workers open their own read-only connection, used only to skip decoding content already
indexed; the main process passes its own. Workers start only once INLINE_BELOW files are
waiting, so a re-scan that finds a handful of new files never pays for starting them.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from imgindex.db.connect import connect_readonly
from imgindex.db.queries import hash_indexed
from imgindex.errors import DecodeError
from imgindex.scan.decode import DECODER, FileResult, read_file
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

    def known(self, digest: str) -> bool:
        return hash_indexed(self.conn, digest, self.px_size, DECODER)


def open_context(db_path: str, px_size: int) -> ReadContext:
    """A worker's context: its own read-only connection."""
    return ReadContext(connect_readonly(db_path), px_size)


def read_batch(context: ReadContext, tasks: list[ReadTask]) -> list[FileResult]:
    return [read_file(task.path, context.px_size, context.known) for task in tasks]


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
