"""The decisions table: record, take back, replace and list decisions, each change in one
transaction with the version bump that tells searches their groups are stale."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgindex.db import decisions as stored
from imgindex.db.runs import now
from imgindex.types import Decision

if TYPE_CHECKING:
    from sqlite_utils import Database

_COLUMNS = "id, kind, path_a, path_b, created_at, note, hash_a, hash_b"


def as_decision(row: tuple) -> Decision:
    decision_id, kind, path_a, path_b, created_at, note, hash_a, hash_b = row
    return Decision(decision_id, kind, _present(path_a, path_b), created_at, note, _present(hash_a, hash_b))


def _present(*values) -> tuple:
    return tuple(v for v in values if v is not None)


def active(db: Database, kind: str, hash_a: str | None, hash_b: str | None = None,
           path_a: str | None = None) -> Decision | None:
    """The decision in force for this key (a pair of hashes, a hash, or a reference folder)."""
    if kind == "reference":
        sql, args = "path_a = ?", [path_a]
    else:
        sql, args = "hash_a = ? AND hash_b IS ?", [hash_a, hash_b]
    row = db.execute(f"SELECT {_COLUMNS} FROM decisions WHERE kind = ? AND revoked_at IS NULL AND {sql}",
                     [kind, *args]).fetchone()
    return None if row is None else as_decision(row)


def add(db: Database, kind: str, *, hash_a: str | None = None, hash_b: str | None = None, path_a: str | None = None,
        path_b: str | None = None, note: str | None = None, replaces: Decision | None = None) -> Decision:
    """Insert a decision (and revoke the one it replaces); call inside ``db.atomic()``."""
    created = now()
    cursor = db.execute(
        "INSERT INTO decisions (kind, hash_a, hash_b, path_a, path_b, created_at, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [kind, hash_a, hash_b, path_a, path_b, created, note])
    if replaces is not None:
        db.execute("UPDATE decisions SET revoked_at = ?, replaced_by = ? WHERE id = ?",
                   [created, cursor.lastrowid, replaces.id])
    stored.bump_version(db)
    return Decision(cursor.lastrowid, kind, _present(path_a, path_b), created, note, _present(hash_a, hash_b))


def revoke(db: Database, decision: Decision) -> None:
    """Take a decision back; its row stays, with revoked_at set. Call inside ``db.atomic()``."""
    db.execute("UPDATE decisions SET revoked_at = ? WHERE id = ?", [now(), decision.id])
    stored.bump_version(db)


def listing(db: Database, kind: str | None = None) -> list[Decision]:
    """Decisions in force, oldest first (of one kind, or all)."""
    where, args = ("AND kind = ?", [kind]) if kind else ("", [])
    rows = db.execute(f"SELECT {_COLUMNS} FROM decisions WHERE revoked_at IS NULL {where} ORDER BY id", args)
    return [as_decision(r) for r in rows]


def by_id(db: Database, decision_id: int) -> Decision | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM decisions WHERE id = ? AND revoked_at IS NULL", [decision_id]).fetchone()
    return None if row is None else as_decision(row)
