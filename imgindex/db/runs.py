"""Timestamps and the rows that record runs (scans, searches, action runs) as they start and end."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database


def now() -> str:
    """The time as every table stores it: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def start_run(db: Database, table: str, values: dict) -> int:
    """Insert the row of a run that starts (scans, searches, action_runs) in its own transaction; its id."""
    columns = ", ".join(values)
    marks = ", ".join("?" * len(values))
    with db.atomic():
        return db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values())).lastrowid


def update_run(db: Database, table: str, run_id: int, values: dict) -> None:
    """Set columns of a run's row (counts so far, or how it ended) in one statement."""
    assignments = ", ".join(f"{column} = ?" for column in values)
    with db.atomic():
        db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", [*values.values(), run_id])


def timings_json(timings) -> str:
    """A run's ``timings`` column (``ScanTimings``, ``SearchTimings``): each figure in seconds, to 0.1 ms."""
    return json.dumps({k: round(v, 4) for k, v in asdict(timings).items()})
