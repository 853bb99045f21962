"""What an index holds and what is happening to it: for ``imgindex status`` and ``Index.status()``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from imgindex.db.pids import alive as watcher_alive
from imgindex.types import Status, WatcherStatus

if TYPE_CHECKING:
    from sqlite_utils import Database


def status(db: Database) -> Status:
    """Images, errors, the last scan, search and action run, and the watcher's row."""
    images = db.execute("SELECT count(*) FROM images").fetchone()[0]
    errors = db.execute("SELECT count(*) FROM scan_errors").fetchone()[0]
    px = db.execute("SELECT value FROM settings WHERE key = 'px_size'").fetchone()
    return Status(
        images=images,
        px_size=int(px[0]) if px else None,
        errors=errors,
        last_scan=_last(db, "SELECT id, started_at, finished_at, status, roots, added, updated, moved, removed,"
                            " failed, executor FROM scans ORDER BY id DESC LIMIT 1"),
        last_search=_last(db, "SELECT id, finished_at, similarity, threshold, pairs, groups, images, status,"
                              " executor, signals FROM searches WHERE status = 'completed' ORDER BY id DESC LIMIT 1"),
        watcher=_watcher(db),
        last_action=_last(db, "SELECT id, command, destination, permanent, started_at, finished_at, status, done,"
                              " skipped, failed FROM action_runs ORDER BY id DESC LIMIT 1"),
    )


def _last(db: Database, sql: str) -> dict | None:
    cursor = db.execute(sql)
    row = cursor.fetchone()
    return None if row is None else dict(zip([d[0] for d in cursor.description], row))


def _watcher(db: Database) -> WatcherStatus | None:
    row = db.execute(
        "SELECT pid, process_start, host, roots, started_at, heartbeat_at, pending, batches, last_batch FROM watcher"
    ).fetchone()
    if row is None:
        return None
    pid, started, host, roots, started_at, heartbeat, pending, batches, last_batch = row
    age = (datetime.now(timezone.utc) - datetime.fromisoformat(heartbeat)).total_seconds()
    return WatcherStatus(
        pid=pid,
        host=host,
        roots=tuple(json.loads(roots)),
        started_at=started_at,
        heartbeat_at=heartbeat,
        seconds_since_heartbeat=age,
        pending=pending,
        batches=batches,
        last_batch=json.loads(last_batch) if last_batch else None,
        running=watcher_alive(pid, started),
    )
