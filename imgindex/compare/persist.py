"""Write a search's results: carried-over pairs, groups (with keepers and exact MSE to the keeper).

Pairs themselves are written as they are found (``execute.PairWriter``). Groups are the
connected components of this search's pairs; a group of the base search with the same
members, the same keeper and no image added or moved since is taken over as it is.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.queries import load_tensors
from imgindex.scan.discover import under
from imgindex.compare import groups as groups_
from imgindex.compare import kernel

if TYPE_CHECKING:
    from sqlite_utils import Database

_MEMBER_INSERT = ("INSERT INTO group_members (search_id, group_id, image_id, is_keeper, root, mse_to_keeper, rotation,"
                  " mirrored) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def carry(db: Database, search_id: int, base_id: int, old_ids: np.ndarray) -> int:
    """Copy the base search's pairs between images that are still there, in scope and not re-compared."""
    with db.atomic():
        db.execute("CREATE TEMP TABLE IF NOT EXISTS carried_ids (id INTEGER PRIMARY KEY)")
        db.execute("DELETE FROM carried_ids")
        db.conn.executemany("INSERT INTO carried_ids VALUES (?)", [(int(i),) for i in old_ids])
        cursor = db.execute(
            "INSERT INTO pairs (search_id, image_a, image_b, mse, rotation, mirrored, found_at)"
            " SELECT ?, image_a, image_b, mse, rotation, mirrored, found_at FROM pairs"
            # "+": check membership row by row; as index keys, the two IN lists make SQLite probe
            # every (a, b) combination of the scope (4.7 s instead of 4 ms at 20k images)
            " WHERE search_id = ? AND +image_a IN carried_ids AND +image_b IN carried_ids",
            [search_id, base_id],
        )
        return cursor.rowcount


def write_groups(db: Database, search_id: int, roots: tuple[str, ...], px_size: int,
                  orientations: tuple[int, ...], *, base_id: int | None = None, changed: set[int] = frozenset(),
                  batch: int = 4096) -> int:
    """Connected components of this search's pairs, keepers, and each member's exact MSE to its keeper.

    A group of the base search with the same members, the same keeper and no image added or
    moved since is taken over as it is; only the others cost tensor reads.
    """
    pairs = np.array(db.execute("SELECT image_a, image_b FROM pairs WHERE search_id = ?", [search_id]).fetchall(),
                     dtype=np.int64).reshape(-1, 2)
    comps = groups_.components(pairs[:, 0], pairs[:, 1])
    made = groups_.make_groups(comps, _members(db, [int(i) for c in comps for i in c]))
    known = _group_rows(db, base_id) if base_id is not None else {}
    fresh, kept = [], []
    for g in made:
        ids = frozenset(m.image_id for m in (g.keeper, *g.others))
        old = known.get(ids)
        if old is not None and old[0][0] == g.keeper.image_id and not ids & changed:
            kept.extend((search_id, g.group_id, *row) for row in old)
        else:
            fresh.append(g)
    with db.atomic():
        db.conn.executemany(_MEMBER_INSERT, kept)
    start = 0
    while start < len(fresh):  # groups in batches: one query loads the tensors of a whole batch
        end, size = start, 0
        while end < len(fresh) and (end == start or size + 1 + len(fresh[end].others) <= batch):
            size += 1 + len(fresh[end].others)
            end += 1
        rows = _member_rows(db, search_id, fresh[start:end], roots, px_size, orientations)
        with db.atomic():
            db.conn.executemany(_MEMBER_INSERT, rows)
        start = end
    return len(made)


def _members(db: Database, member_ids: list[int]) -> dict[int, groups_.Member]:
    """The facts the keeper choice needs, for every image in a group."""
    members = {}
    for start in range(0, len(member_ids), 20000):
        for image_id, width, height, size, path in db.execute(
            "SELECT id, width, height, size, path FROM images WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(member_ids[start : start + 20000])],
        ):
            members[image_id] = groups_.Member(image_id, width, height, size, path)
    return members


def _member_rows(db: Database, search_id: int, batch: list[groups_.Group], roots: tuple[str, ...], px_size: int,
                 orientations: tuple[int, ...]) -> list[tuple]:
    """group_members rows of a batch of groups: the keeper, then each other member's exact MSE to it."""
    ids = [m.image_id for g in batch for m in (g.keeper, *g.others)]
    tensors = dict(zip(ids, load_tensors(db, ids, px_size)))
    n_values = px_size * px_size * 3
    rows = []
    for g in batch:
        root = next((r for r in roots if under(os.path.dirname(g.keeper.path), r)), None)
        rows.append((search_id, g.group_id, g.keeper.image_id, 1, root, None, None, None))
        keeper = np.repeat(tensors[g.keeper.image_id][None], len(g.others), axis=0)
        others = np.stack([tensors[m.image_id] for m in g.others])
        ssd = np.stack([kernel.exact_ssd(keeper, others, o) for o in orientations], axis=1)
        for m, row in zip(g.others, ssd):
            k = int(np.argmin(row))
            t = kernel.ORIENTATIONS[orientations[k]]
            rows.append((search_id, g.group_id, m.image_id, 0, root, float(row[k]) / n_values, t.rotation,
                         int(t.mirrored)))
    return rows


def _group_rows(db: Database, search_id: int) -> dict[frozenset, list[tuple]]:
    """A search's groups by member set: rows (image_id, is_keeper, root, mse, rotation, mirrored), keeper first."""
    by_group: dict[int, list[tuple]] = {}
    for group_id, *row in db.execute(
        "SELECT group_id, image_id, is_keeper, root, mse_to_keeper, rotation, mirrored FROM group_members"
        " WHERE search_id = ? ORDER BY group_id, is_keeper DESC",
        [search_id],
    ):
        by_group.setdefault(group_id, []).append(tuple(row))
    return {frozenset(r[0] for r in rows): rows for rows in by_group.values()}


def copy_groups(db: Database, search_id: int, base_id: int) -> int:
    """Nothing was added or removed since the base search: its groups are this search's."""
    with db.atomic():
        db.execute(
            "INSERT INTO group_members (search_id, group_id, image_id, is_keeper, root, mse_to_keeper, rotation,"
            " mirrored) SELECT ?, group_id, image_id, is_keeper, root, mse_to_keeper, rotation, mirrored"
            " FROM group_members WHERE search_id = ?",
            [search_id, base_id],
        )
    return db.execute("SELECT count(DISTINCT group_id) FROM group_members WHERE search_id = ?", [search_id]).fetchone()[0]
