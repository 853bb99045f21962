"""One watcher per index: a row in the ``watcher`` table, taken in an IMMEDIATE transaction and
checked against the live process, is the lock. A watcher killed with SIGKILL leaves a stale row
that the next one replaces; its heartbeat says how long ago it was last seen working."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict
from typing import TYPE_CHECKING

from imgindex.db.pids import alive, process_start
from imgindex.db.runs import now
from imgindex.errors import WatchLockError
from imgindex.types import BatchReport

if TYPE_CHECKING:
    from sqlite_utils import Database


class WatchLock:
    def __init__(self, db: Database, db_path: str, roots: tuple[str, ...]):
        self.db, self.db_path, self.roots = db, db_path, roots

    def acquire(self) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT pid, process_start, host, started_at FROM watcher WHERE id = 1").fetchone()
            if row and (row[2] != socket.gethostname() or alive(row[0], row[1])):
                raise WatchLockError(
                    f"Another watcher (pid {row[0]} on {row[2]}, since {row[3]}) is already watching "
                    f"{self.db_path}. Stop it first; readers (search, sqlite3) can use the index meanwhile."
                )
            db.execute("DELETE FROM watcher")
            db.execute(
                "INSERT INTO watcher (id, pid, process_start, host, roots, started_at, heartbeat_at)"
                " VALUES (1, ?, ?, ?, ?, ?, ?)",
                [os.getpid(), process_start(os.getpid()), socket.gethostname(), json.dumps(list(self.roots)), now(),
                 now()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def heartbeat(self, pending: int, batch: BatchReport | None = None) -> None:
        with self.db.atomic():
            if batch is None:
                self.db.execute("UPDATE watcher SET heartbeat_at = ?, pending = ? WHERE pid = ?",
                                [now(), pending, os.getpid()])
            else:
                self.db.execute(
                    "UPDATE watcher SET heartbeat_at = ?, pending = ?, batches = batches + 1, last_batch_at = ?,"
                    " last_batch = ? WHERE pid = ?",
                    [now(), pending, now(), json.dumps(asdict(batch)), os.getpid()],
                )

    def release(self) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM watcher WHERE pid = ?", [os.getpid()])
