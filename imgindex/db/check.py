"""The invariants an index must hold whatever happened to it (a kill anywhere, a power cut, a full
disk): what ``imgindex check`` reports and the torture tests assert after every trial.

Each check returns a ``CheckFinding`` when it fails: what is wrong, how many rows, and whether
``--repair`` can fix it. Nothing here touches a user's file.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from imgindex.db import pids
from imgindex.db.queries import px_size
from imgindex.types import CheckFinding

if TYPE_CHECKING:
    from sqlite_utils import Database


def findings(db: Database) -> list[CheckFinding]:
    """Every invariant that does not hold, in the order checked; [] for a sound index."""
    out = []
    integrity = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
    if integrity != ["ok"]:
        out.append(CheckFinding("integrity", len(integrity), "SQLite's integrity check failed: "
                                + "; ".join(integrity[:5]), False))
        return out  # nothing else can be trusted
    orphans = db.execute("PRAGMA foreign_key_check").fetchall()
    if orphans:
        tables = sorted({r[0] for r in orphans})
        out.append(CheckFinding("orphans", len(orphans), f"rows refer to rows that are gone (in {', '.join(tables)})",
                                True))
    px = px_size(db)
    if px is not None:
        out += _tensors(db, px)
    out += _journal(db)
    out += _groups(db)
    out += _points(db)
    return out


_UNPOINTED = ("SELECT count(*) FROM search_keys k WHERE k.sample IS NOT NULL AND EXISTS (SELECT 1 FROM search_space)"
              " AND NOT EXISTS (SELECT 1 FROM search_points p WHERE p.image_id = k.image_id)")


# images with a tone (or rank) of a recipe whose point index exists, without their point in it
_UNPOINTED_TONE = ("SELECT count(*) FROM {table} k JOIN signal_space s ON s.recipe = k.recipe"
                   " WHERE length(k.coarse) > 0 AND NOT EXISTS (SELECT 1 FROM signal_points p"
                   " WHERE p.recipe = k.recipe AND p.image_id = k.image_id)")
TONE_TABLES = ("tone_keys", "rank_keys")


def _points(db: Database) -> list[CheckFinding]:
    """Every image with search keys has its point, once the point index exists (``compare.points``),
    and every image with a tone its tone and rank points (``compare.tone_points``): an incremental
    search would otherwise never find it as a neighbour."""
    out = []
    missing = db.execute(_UNPOINTED).fetchone()[0]
    if missing:
        out.append(CheckFinding("point index", missing, "images with search keys have no point in the point index"
                                " (an incremental search could miss their pairs); the next search makes it again",
                                True))
    missing = sum(db.execute(_UNPOINTED_TONE.format(table=t)).fetchone()[0] for t in TONE_TABLES)
    if missing:
        out.append(CheckFinding("tone point index", missing, "images with a tone have no point in the tone or rank"
                                " point index (an incremental search could miss their pairs); the next search of a few"
                                " new images makes it again", True))
    return out


def _tensors(db: Database, px: int) -> list[CheckFinding]:
    out = []
    missing = db.execute("SELECT count(*) FROM images i WHERE NOT EXISTS (SELECT 1 FROM tensors t"
                         " WHERE t.image_id = i.id)").fetchone()[0]
    if missing:
        out.append(CheckFinding("missing tensors", missing, "images have no stored tensor", True))
    wrong = db.execute("SELECT count(*) FROM tensors t JOIN images i ON i.id = t.image_id WHERE t.px_size != ?"
                       " OR i.px_size != ? OR length(t.tensor) != ?", [px, px, px * px * 3]).fetchone()[0]
    if wrong:
        out.append(CheckFinding("wrong tensors", wrong, f"tensors are not {px}x{px}x3 as the index's size", True))
    return out


def _journal(db: Database) -> list[CheckFinding]:
    dead = [run_id for run_id, pid, started, host in db.execute(
        "SELECT id, pid, process_start, host FROM action_runs WHERE status = 'running'").fetchall()
        if host == socket.gethostname() and not pids.alive(pid, started)]
    if not dead:
        return []
    planned = db.execute("SELECT count(*) FROM actions WHERE outcome = 'planned' AND run_id IN"
                         f" ({','.join('?' * len(dead))})", dead).fetchone()[0]
    return [CheckFinding("unsettled journal", len(dead), f"action runs were interrupted ({planned} files in hand);"
                         " settling them reads the disk to finish or revert each", True)]


def _groups(db: Database) -> list[CheckFinding]:
    # (a group may be down to its keeper: the others were moved or trashed since the search)
    bad = db.execute("SELECT count(*) FROM (SELECT group_id FROM group_members WHERE search_id ="
                     " (SELECT id FROM latest_search) GROUP BY group_id HAVING sum(is_keeper) != 1)").fetchone()[0]
    if bad:
        return [CheckFinding("groups", bad, "groups of the latest search do not have exactly one keeper", True)]
    return []


ORPHANS = {
    "tensors": "DELETE FROM tensors WHERE image_id NOT IN (SELECT id FROM images)",
    "search_keys": "DELETE FROM search_keys WHERE image_id NOT IN (SELECT id FROM images)",
    "tone_keys": "DELETE FROM tone_keys WHERE image_id NOT IN (SELECT id FROM images)",
    "rank_keys": "DELETE FROM rank_keys WHERE image_id NOT IN (SELECT id FROM images)",
    "trimmed_tensors": "DELETE FROM trimmed_tensors WHERE image_id NOT IN (SELECT id FROM images)",
    "signal_points": "DELETE FROM signal_points WHERE image_id NOT IN (SELECT id FROM images)",
    "pair_rows": "DELETE FROM pair_rows WHERE image_a NOT IN (SELECT id FROM images)"
                 " OR image_b NOT IN (SELECT id FROM images) OR pair_set NOT IN (SELECT id FROM searches)",
    "group_rows": "DELETE FROM group_rows WHERE image_id NOT IN (SELECT id FROM images)"
                  " OR group_set NOT IN (SELECT id FROM searches)",
    "stale_groups": "DELETE FROM stale_groups WHERE group_set NOT IN (SELECT id FROM searches)",
}


SHOWN_AS = {"pair_rows": "pairs", "group_rows": "group_members"}  # the tables behind the views users know


def repair(db: Database) -> list[str]:
    """Fix what ``findings`` can, short of the journal and the groups (the facade settles and regroups):
    drop orphan rows and an incomplete point index, and queue images without a good tensor for the next scan (their row goes, so
    the next scan finds the file new and reads it; decisions are kept by content). Returns what was done."""
    done = []
    for table in sorted({r[0] for r in db.execute("PRAGMA foreign_key_check").fetchall()}):
        if table in ORPHANS:
            label = SHOWN_AS.get(table, table)
            done.append(f"dropped {db.execute(ORPHANS[table]).rowcount} orphan rows of {label}")
    if db.execute(_UNPOINTED).fetchone()[0]:
        db.execute("DELETE FROM search_space")  # the next search that needs it fits and fills it again
        db.execute("DELETE FROM search_points")
        done.append("dropped the point index: the next search makes it again")
    if sum(db.execute(_UNPOINTED_TONE.format(table=t)).fetchone()[0] for t in TONE_TABLES):
        db.execute("DELETE FROM signal_space")
        db.execute("DELETE FROM signal_points")
        done.append("dropped the tone and rank point index: the next search of a few new images makes it"
                    " again")
    px = px_size(db)
    if px is not None:
        db.execute("DELETE FROM tensors WHERE px_size != ? OR length(tensor) != ?", [px, px * px * 3])
        n = db.execute("DELETE FROM images WHERE px_size != ? OR id NOT IN (SELECT image_id FROM tensors)",
                       [px]).rowcount
        if n:
            done.append(f"queued {n} images for the next scan to read again (no good tensor)")
    return done
