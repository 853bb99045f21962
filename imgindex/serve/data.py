"""What the review page shows, read from the index: the latest search's groups (with why each member
is kept and what kind of copy it is), filtered and paged, and the state the page polls.

A snapshot of the groups is built once per state of the index (search, decisions, scans and
actions) and kept, so paging and filtering cost no query.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from imgindex.db.connect import connect_readonly
from imgindex.db.decisions import members_key, reviewed_keys

KINDS = ("byte copy", "same pixels", "rotated", "resized", "similar")


@dataclass(frozen=True)
class MemberView:
    image_id: int
    name: str
    folder: str
    width: int
    height: int
    size: int
    format: str | None
    modified: str  # ISO 8601, UTC
    mse_to_keeper: float | None
    rotation: int | None
    mirrored: bool
    is_keeper: bool
    keep_reason: str | None  # 'rule', 'pinned', 'reference'; None: acted on
    kind: str | None  # how it relates to the keeper (KINDS); None for the keeper


@dataclass(frozen=True)
class GroupView:
    """A group's summary, and its members' rows as read: the page's MemberViews are made only for the
    groups a page shows (making all of them for 10,000 groups took most of a first page's time)."""

    group_id: int
    rows: tuple[tuple, ...]  # the keeper, the other kept members, then the rest (see _build's query)
    kinds_of: tuple[str | None, ...]  # per row: how it relates to the keeper (KINDS); None for the keeper
    reclaimable: int  # bytes of the members acted on
    kinds: tuple[str, ...]
    decided: bool  # a member is pinned or in a reference folder, or in a pair decided 'not duplicates'
    reviewed: bool  # marked as looked at and accepted (the reviews table)
    folders: frozenset[str]

    def members(self) -> tuple[MemberView, ...]:
        return tuple(
            MemberView(image_id, os.path.basename(path), folder, w, h, size, fmt,
                       datetime.fromtimestamp(mtime_ns / 1e9, timezone.utc).isoformat(timespec="seconds"), mse,
                       rotation, bool(mirrored), bool(is_keeper), reason, kind)
            for (image_id, path, folder, w, h, size, fmt, mtime_ns, _digest, is_keeper, reason, mse, rotation, mirrored),
            kind in zip(self.rows, self.kinds_of))

    def as_json(self) -> dict:
        return {"group_id": self.group_id, "members": [asdict(m) for m in self.members()],
                "reclaimable": self.reclaimable, "kinds": list(self.kinds), "decided": self.decided,
                "reviewed": self.reviewed}


@dataclass(frozen=True)
class Snapshot:
    version: str
    search: dict | None
    groups: tuple[GroupView, ...]  # most reclaimable first


class Reader:
    """Read-only connections (one per thread) and the cached snapshot of the groups."""

    def __init__(self, db_path: str):
        self.db_path = db_path
        self.local = threading.local()
        self.lock = threading.Lock()
        self.snapshot: Snapshot | None = None

    def conn(self) -> sqlite3.Connection:
        if getattr(self.local, "conn", None) is None:
            self.local.conn = connect_readonly(self.db_path)
        return self.local.conn

    def version(self) -> str:
        """Changes whenever what the page shows may have changed."""
        row = self.conn().execute(
            "SELECT (SELECT id FROM latest_search), s.decisions_version, s.keep_rule, s.groups, s.pairs,"
            " (SELECT max(id) FROM scans), (SELECT max(id) FROM actions), (SELECT count(*) FROM decisions),"
            " (SELECT count(*) FROM reviews)"
            " FROM (SELECT 1) LEFT JOIN searches s ON s.id = (SELECT id FROM latest_search)").fetchone()
        return "-".join("" if v is None else str(v) for v in row)

    def current(self) -> Snapshot:
        version = self.version()
        with self.lock:
            if self.snapshot is None or self.snapshot.version != version:
                self.snapshot = _build(self.conn(), version)
            return self.snapshot

    def image(self, image_id: int) -> tuple | None:
        """(path, size, mtime_ns, content_hash, format) of an indexed image."""
        return self.conn().execute("SELECT path, size, mtime_ns, content_hash, format FROM images WHERE id = ?",
                                   [image_id]).fetchone()


def _build(conn: sqlite3.Connection, version: str) -> Snapshot:
    cursor = conn.execute("SELECT id, similarity, threshold, finished_at, images, pairs, groups FROM searches"
                          " WHERE id = (SELECT id FROM latest_search)")
    row = cursor.fetchone()
    if row is None:
        return Snapshot(version, None, ())
    search = dict(zip([d[0] for d in cursor.description], row))
    ignored = {h for pair in conn.execute("SELECT hash_a, hash_b FROM decisions WHERE kind = 'not-duplicates'"
                                          " AND revoked_at IS NULL") for h in pair}
    rows = conn.execute(
        "SELECT g.group_id, i.id, i.path, i.folder, i.width, i.height, i.size, i.format, i.mtime_ns, i.content_hash,"
        " g.is_keeper, g.keep_reason, g.mse_to_keeper, g.rotation, g.mirrored FROM group_members g"
        " JOIN images i ON i.id = g.image_id WHERE g.search_id = ?"
        " ORDER BY g.group_id, g.is_keeper DESC, g.keep_reason IS NULL, g.mse_to_keeper, i.path", [search["id"]])
    by_group: dict[int, list[tuple]] = {}
    for gid, *fields in rows:
        by_group.setdefault(gid, []).append(tuple(fields))
    reviewed = reviewed_keys(conn)
    groups = [_group(gid, members, ignored, reviewed) for gid, members in by_group.items()]
    groups.sort(key=lambda g: (-g.reclaimable, g.group_id))
    return Snapshot(version, search, tuple(groups))


def _group(gid: int, rows: list[tuple], ignored: set[str], reviewed: set[str]) -> GroupView:
    keeper = rows[0]
    kinds_of = tuple(None if r[9] else _kind(keeper, r[3], r[4], r[8], r[11], r[12], r[13]) for r in rows)
    hashes = frozenset(r[8] for r in rows)
    return GroupView(
        gid, tuple(rows), kinds_of, sum(r[5] for r in rows if r[10] is None and not r[9]),
        tuple(k for k in KINDS if k in kinds_of),
        any(r[10] in ("pinned", "reference") for r in rows) or bool(hashes & ignored),
        members_key(hashes) in reviewed, frozenset(r[2].lower() for r in rows))


def _kind(keeper: tuple, w: int, h: int, digest: str, mse, rotation, mirrored) -> str:
    if digest == keeper[8]:
        return "byte copy"
    if rotation or mirrored:
        return "rotated"
    if (w * h) != keeper[3] * keeper[4]:
        return "resized"
    return "same pixels" if mse == 0 else "similar"


def select(snapshot: Snapshot, *, folder: str = "", min_members: int = 2, kind: str = "", decided: str = "",
           reviewed: str = "", page: int = 1, per_page: int = 20) -> tuple[int, list[GroupView]]:
    """(how many groups pass the filters, the page asked for)."""
    found = [g for g in snapshot.groups
             if len(g.rows) >= min_members
             and (not folder or any(folder.lower() in f for f in g.folders))
             and (not kind or kind in g.kinds)
             and (decided == "" or g.decided == (decided == "yes"))
             and (reviewed == "" or g.reviewed == (reviewed == "yes"))]
    start = (page - 1) * per_page
    return len(found), found[start : start + per_page]
