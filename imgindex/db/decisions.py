"""Reading the review decisions every stage applies: ignored pairs, pinned keepers, reference folders.

Writing them (with their checks and conflicts) is ``imgindex.decide``'s job. Each change bumps
``decisions_version``, and a search records the version its groups reflect, so a stale grouping
is recognised without comparing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING

from imgindex.db.queries import get_setting, set_setting

if TYPE_CHECKING:
    from sqlite_utils import Database

ACTIVE = "revoked_at IS NULL"
# a pair is ignored when its two content hashes are decided 'not-duplicates' (smaller hash first)
NOT_IGNORED = (
    "NOT EXISTS (SELECT 1 FROM decisions d WHERE d.kind = 'not-duplicates' AND d.revoked_at IS NULL"
    " AND d.hash_a = min(a.content_hash, b.content_hash) AND d.hash_b = max(a.content_hash, b.content_hash))"
)


def version(db: Database) -> int:
    """How many times the decisions changed: a search's groups reflect one version."""
    return int(get_setting(db, "decisions_version") or 0)


def bump_version(db: Database) -> int:
    """Call inside the transaction that changes a decision."""
    new = version(db) + 1
    set_setting(db, "decisions_version", str(new))
    return new


def pin_of(db: Database, content_hash: str) -> int | None:
    """The id of the pin in force on this content, if any."""
    row = db.execute(f"SELECT id FROM decisions WHERE kind = 'keep' AND {ACTIVE} AND hash_a = ?",
                     [content_hash]).fetchone()
    return None if row is None else row[0]


def pinned(db: Database) -> dict[str, str]:
    """Pinned content hashes and the path each was pinned at."""
    return dict(db.execute(f"SELECT hash_a, path_a FROM decisions WHERE kind = 'keep' AND {ACTIVE}").fetchall())


def reference_folders(db: Database) -> tuple[str, ...]:
    """The reference folders, sorted (absolute paths)."""
    rows = db.execute(f"SELECT path_a FROM decisions WHERE kind = 'reference' AND {ACTIVE} ORDER BY path_a")
    return tuple(r[0] for r in rows)


def reference_ids(db: Database) -> set[int]:
    """Ids of the indexed images under a reference folder."""
    return {r[0] for r in db.execute("SELECT DISTINCT image_id FROM reference_images")}


def unignored_pairs(db: Database, search_id: int, among: list[int] | None = None) -> list[tuple[int, int]]:
    """A search's pairs (between images ``among``, or all), minus those decided 'not duplicates'."""
    if among is None:
        where, args = "", [search_id]
    else:
        # "+": image_b is checked row by row; as a second index key, SQLite probes every (a, b) of
        # the two lists (12,000 images: 49 s instead of 1 s)
        where = " AND p.image_a IN (SELECT value FROM json_each(?)) AND +p.image_b IN (SELECT value FROM json_each(?))"
        args = [search_id, json.dumps(among), json.dumps(among)]
    if db.execute("SELECT 1 FROM decisions WHERE kind = 'not-duplicates' AND revoked_at IS NULL LIMIT 1").fetchone():
        return db.execute(
            "SELECT p.image_a, p.image_b FROM pairs p JOIN images a ON a.id = p.image_a"
            f" JOIN images b ON b.id = p.image_b WHERE p.search_id = ? AND {NOT_IGNORED}{where}",
            args,
        ).fetchall()
    # none decided: no hashes to look up (a million pairs in 0.9 s instead of 5-7 s)
    return db.execute(f"SELECT p.image_a, p.image_b FROM pairs p WHERE p.search_id = ?{where}", args).fetchall()


def images_concerned(db: Database, hashes: set[str], folders: set[str]) -> set[int]:
    """Ids of the images with these content hashes or under these folders: what a decision touches."""
    found = {r[0] for r in db.execute("SELECT id FROM images WHERE content_hash IN (SELECT value FROM json_each(?))",
                                      [json.dumps(sorted(hashes))])}
    for folder in folders:
        found |= {r[0] for r in db.execute(
            "SELECT id FROM images WHERE folder = ? OR substr(folder, 1, length(?)) = ?",
            [folder, folder.rstrip(os.sep) + os.sep, folder.rstrip(os.sep) + os.sep])}
    return found


def counts(db: Database) -> dict[str, int]:
    """Decisions in force, by kind."""
    return dict(db.execute(f"SELECT kind, count(*) FROM decisions WHERE {ACTIVE} GROUP BY kind").fetchall())


def members_key(hashes) -> str:
    """The key of a group in ``reviews``: the SHA-256 of its members' sorted distinct content hashes."""
    return hashlib.sha256(",".join(sorted(set(hashes))).encode()).hexdigest()


def reviewed_keys(db: Database) -> set[str]:
    return {r[0] for r in db.execute("SELECT members FROM reviews")}
