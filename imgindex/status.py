"""What an index holds and what is happening to it: for ``imgindex status`` and ``Index.status()``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlite_utils import Database

from imgindex.pids import alive as watcher_alive


@dataclass(frozen=True)
class WatcherStatus:
    pid: int
    host: str
    roots: tuple[str, ...]
    started_at: str
    heartbeat_at: str
    seconds_since_heartbeat: float
    pending: int
    batches: int
    last_batch: dict | None
    running: bool  # False: a watcher died without cleaning up (its next start repairs the index)


@dataclass(frozen=True)
class Status:
    images: int
    px_size: int | None
    errors: int
    last_scan: dict | None
    last_search: dict | None
    watcher: WatcherStatus | None
    last_action: dict | None = None


def status(db: Database) -> Status:
    images = db.execute("SELECT count(*) FROM images").fetchone()[0]
    errors = db.execute("SELECT count(*) FROM scan_errors").fetchone()[0]
    px = db.execute("SELECT value FROM settings WHERE key = 'px_size'").fetchone()
    return Status(
        images=images,
        px_size=int(px[0]) if px else None,
        errors=errors,
        last_scan=_last(db, "SELECT id, started_at, finished_at, status, roots, added, updated, moved, removed,"
                            " failed FROM scans ORDER BY id DESC LIMIT 1"),
        last_search=_last(db, "SELECT id, finished_at, similarity, threshold, pairs, groups, images, status"
                              " FROM searches WHERE status = 'completed' ORDER BY id DESC LIMIT 1"),
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
