"""Write a search's results: carried-over pairs, groups (with keepers and exact MSE to the keeper).

Pairs themselves are written as they are found (``execute.PairWriter``). Groups are the
connected components of this search's pairs minus those set aside by decisions (not
duplicates; both in reference folders); a group of the base search with the same members and
keepers and no image added or moved since is taken over as it is.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db import decisions
from imgindex.db.queries import load_tensors
from imgindex.scan.discover import under
from imgindex.compare import groups as groups_
from imgindex.compare import kernel, space

if TYPE_CHECKING:
    from sqlite_utils import Database

_MEMBERS = "search_id, group_id, image_id, is_keeper, root, mse_to_keeper, rotation, mirrored, keep_reason"
_MEMBER_INSERT = f"INSERT INTO group_members ({_MEMBERS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def carry(db: Database, search_id: int, base_id: int, old_ids: np.ndarray) -> int:
    """Copy the base search's pairs between images that are still there, in scope and not re-compared.

    The base's pairs only name images that exist (deleting an image deletes its pairs), so the
    shorter list is used: the ids to carry, or the existing ids not to (usually just the new ones).
    """
    existing = np.fromiter((r[0] for r in db.execute("SELECT id FROM images")), dtype=np.int64)
    excluded = space.missing_from(np.sort(existing), np.sort(old_ids))
    use_excluded = len(excluded) < len(old_ids)
    with db.atomic():
        db.execute("CREATE TEMP TABLE IF NOT EXISTS carried_ids (id INTEGER PRIMARY KEY)")
        db.execute("DELETE FROM carried_ids")
        db.conn.executemany("INSERT INTO carried_ids VALUES (?)",
                            [(int(i),) for i in (excluded if use_excluded else old_ids)])
        # "+": check membership row by row; as index keys, the two IN lists make SQLite probe
        # every (a, b) combination of the scope (4.7 s instead of 4 ms at 20k images)
        where = ("+image_a NOT IN carried_ids AND +image_b NOT IN carried_ids" if use_excluded
                 else "+image_a IN carried_ids AND +image_b IN carried_ids")
        cursor = db.execute(
            "INSERT INTO pairs (search_id, image_a, image_b, mse, rotation, mirrored, found_at)"
            f" SELECT ?, image_a, image_b, mse, rotation, mirrored, found_at FROM pairs WHERE search_id = ? AND {where}",
            [search_id, base_id],
        )
        return cursor.rowcount


def write_groups(db: Database, search_id: int, roots: tuple[str, ...], px_size: int,
                 orientations: tuple[int, ...], policy: groups_.Policy, *, base_id: int | None = None,
                 changed: set[int] = frozenset()) -> tuple[int, int]:
    """(groups, pairs set aside): connected components of the search's pairs that decisions leave,
    keepers, and each member's exact MSE to its keeper; groups numbered by their keeper's path.

    Replaces the search's groups in one transaction. A group of the base search with the same
    members and the same keepers and no image added or moved since is taken over as it is;
    only the others cost tensor reads.
    """
    total = db.execute("SELECT count(*) FROM pairs WHERE search_id = ?", [search_id]).fetchone()[0]
    pairs = grouping_pairs(db, search_id, policy)
    comps = groups_.components(pairs[:, 0], pairs[:, 1])
    made = groups_.make_groups(comps, members_of(db, [int(i) for c in comps for i in c]), policy)
    known = group_rows_of(db, base_id) if base_id is not None else {}
    with db.atomic():
        db.execute("DELETE FROM group_members WHERE search_id = ?", [search_id])
        store_groups(db, search_id, made, known, changed, roots, px_size, orientations)
    return len(made), total - len(pairs)


def grouping_pairs(db: Database, search_id: int, policy: groups_.Policy, among: list[int] | None = None) -> np.ndarray:
    """(n, 2) pairs of a search that make groups: not decided 'not duplicates', not two reference images."""
    pairs = np.array(decisions.unignored_pairs(db, search_id, among), dtype=np.int64).reshape(-1, 2)
    if policy.reference and len(pairs):  # the archive is trusted: two reference images never make a pair
        ref = np.array(sorted(decisions.reference_ids(db)), dtype=np.int64)
        pairs = pairs[~(np.isin(pairs[:, 0], ref) & np.isin(pairs[:, 1], ref))]
    return pairs


def store_groups(db: Database, search_id: int, made: list[groups_.Group], known: dict, changed: set[int],
                 roots: tuple[str, ...], px_size: int, orientations: tuple[int, ...], batch: int = 4096) -> None:
    """Insert the group_members rows of ``made``: taken over from ``known`` where nothing changed,
    else with each member's exact MSE to the keeper (tensors read a batch of groups at a time)."""
    fresh, kept = [], []
    for g in made:
        ids = frozenset(m.image_id for m in (g.keeper, *g.others))
        old = known.get(ids)
        if old is not None and not ids & changed and {r[0]: (r[1], r[6]) for r in old} == _kept_as(g):
            kept.extend((search_id, g.group_id, *row) for row in old)
        else:
            fresh.append(g)
    db.conn.executemany(_MEMBER_INSERT, kept)
    start = 0
    while start < len(fresh):
        end, size = start, 0
        while end < len(fresh) and (end == start or size + 1 + len(fresh[end].others) <= batch):
            size += 1 + len(fresh[end].others)
            end += 1
        db.conn.executemany(_MEMBER_INSERT, _member_rows(db, search_id, fresh[start:end], roots, px_size,
                                                         orientations))
        start = end


def _kept_as(group: groups_.Group) -> dict[int, tuple[int, str | None]]:
    """image id -> (is_keeper, keep_reason) of every member."""
    return {m.image_id: (int(m is group.keeper), group.reasons.get(m.image_id))
            for m in (group.keeper, *group.others)}


def members_of(db: Database, member_ids: list[int]) -> dict[int, groups_.Member]:
    """The facts the keeper choice needs, for every image in a group."""
    members = {}
    for start in range(0, len(member_ids), 20000):
        for row in db.execute(
            "SELECT id, width, height, size, path, mtime_ns, format, content_hash FROM images"
            " WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(member_ids[start : start + 20000])],
        ):
            members[row[0]] = groups_.Member(*row)
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
        rows.append((search_id, g.group_id, g.keeper.image_id, 1, root, None, None, None, g.reasons[g.keeper.image_id]))
        keeper = np.repeat(tensors[g.keeper.image_id][None], len(g.others), axis=0)
        others = np.stack([tensors[m.image_id] for m in g.others])
        ssd = np.stack([kernel.exact_ssd(keeper, others, o) for o in orientations], axis=1)
        for m, row in zip(g.others, ssd):
            k = int(np.argmin(row))
            t = kernel.ORIENTATIONS[orientations[k]]
            rows.append((search_id, g.group_id, m.image_id, 0, root, float(row[k]) / n_values, t.rotation,
                         int(t.mirrored), g.reasons.get(m.image_id)))
    return rows


def group_rows_of(db: Database, search_id: int, group_ids: list[int] | None = None) -> dict[frozenset, list[tuple]]:
    """A search's groups by member set: rows (image_id, is_keeper, root, mse, rotation, mirrored, keep_reason),
    keeper first."""
    by_group: dict[int, list[tuple]] = {}
    for group_id, *row in db.execute(
        "SELECT group_id, image_id, is_keeper, root, mse_to_keeper, rotation, mirrored, keep_reason FROM group_members"
        " WHERE search_id = ?" + ("" if group_ids is None else " AND group_id IN (SELECT value FROM json_each(?))")
        + " ORDER BY group_id, is_keeper DESC",
        [search_id] + ([] if group_ids is None else [json.dumps(group_ids)]),
    ):
        by_group.setdefault(group_id, []).append(tuple(row))
    return {frozenset(r[0] for r in rows): rows for rows in by_group.values()}


def copy_groups(db: Database, search_id: int, base_id: int) -> tuple[int, int]:
    """(groups, pairs set aside): nothing changed since the base search, so its groups are this search's."""
    with db.atomic():
        db.execute(
            f"INSERT INTO group_members ({_MEMBERS}) SELECT ?, group_id, image_id, is_keeper, root, mse_to_keeper,"
            " rotation, mirrored, keep_reason FROM group_members WHERE search_id = ?",
            [search_id, base_id],
        )
    groups = db.execute("SELECT count(DISTINCT group_id) FROM group_members WHERE search_id = ?", [search_id])
    set_aside = db.execute("SELECT coalesce(set_aside, 0) FROM searches WHERE id = ?", [base_id])
    return groups.fetchone()[0], set_aside.fetchone()[0]
