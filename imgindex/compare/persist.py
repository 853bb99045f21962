"""Write a search's results: pairs, groups (with keepers and exact MSE to the keeper).

Searches that build on one another share rows (``pair_rows``, ``group_rows``; the ``pairs``
and ``group_members`` views): a row belongs to the searches of its chain from the one that
found it to the one that hid it. A full search starts a chain and writes everything; an
incremental search writes only what changed, in one transaction with its completion: it hides
the pairs of images compared again, adds the pairs it found, and makes again only the groups
those touch (or that lost or changed a member since). A million unchanged pairs cost nothing.

Groups are the connected components of a search's pairs minus those set aside by decisions
(not duplicates; both in reference folders).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db import decisions
from imgindex.db.queries import load_tensors
from imgindex.scan.discover import under
from imgindex.compare import groups as groups_
from imgindex.compare import kernel
from imgindex.compare.execute import PairWriter
from imgindex.compare.tone import ToneFound

if TYPE_CHECKING:
    from sqlite_utils import Database

_ROW_COLUMNS = ("group_set, group_id, image_id, is_keeper, root, mse_to_keeper, rotation, mirrored, keep_reason,"
                " found_in")
ROW_INSERT = f"INSERT INTO group_rows ({_ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
VISIBLE = "found_in <= ? AND (gone_in IS NULL OR gone_in > ?)"  # the rows of one search of the chain


def chain_of(db: Database, search_id: int) -> int:
    """The chain (pair_set) a search writes to."""
    return db.execute("SELECT pair_set FROM searches WHERE id = ?", [search_id]).fetchone()[0]


def add_pairs(db: Database, pair_set: int, search_id: int, found: tuple[np.ndarray, ...], n_values: int,
              others: dict[str, ToneFound] | None = None) -> int:
    """Write pairs a search found (``found`` by pixels, ``others`` by each other signal), leaving out
    those whose image left the index meanwhile (a scan running beside the search); returns how many."""
    others = others or {}
    ids = np.unique(np.concatenate([found[0], found[1], *(np.concatenate([p.image_a, p.image_b])
                                                          for p in others.values())]))
    if len(ids) == 0:
        return 0
    present = np.fromiter((r[0] for r in db.execute(
        "SELECT id FROM images WHERE id IN (SELECT value FROM json_each(?))", [json.dumps(ids.tolist())])),
        dtype=np.int64)
    writer = PairWriter(db, pair_set, search_id, n_values)
    keep = np.isin(found[0], present) & np.isin(found[1], present)
    written = writer.add(tuple(x[keep] for x in found))
    for signal, pairs in others.items():
        kept = pairs.take(np.isin(pairs.image_a, present) & np.isin(pairs.image_b, present))
        written += writer.add((kept.image_a, kept.image_b, kept.ssd, kept.orient), signal, kept.score)
    writer.flush()
    return written


def hide_pairs(db: Database, pair_set: int, search_id: int, image_ids: np.ndarray) -> int:
    """Hide, from ``search_id`` on, the chain's pairs of images compared again; returns how many."""
    if len(image_ids) == 0:
        return 0
    given = json.dumps(np.asarray(image_ids).tolist())
    hidden = 0
    for column in ("image_a", "image_b"):
        hidden += db.execute(f"UPDATE pair_rows SET gone_in = ? WHERE pair_set = ? AND gone_in IS NULL"
                             f" AND {column} IN (SELECT value FROM json_each(?))",
                             [search_id, pair_set, given]).rowcount
    return hidden


def count_pairs(db: Database, pair_set: int, search_id: int) -> int:
    return db.execute(f"SELECT count(*) FROM pair_rows WHERE pair_set = ? AND {VISIBLE}",
                      [pair_set, search_id, search_id]).fetchone()[0]


def count_groups(db: Database, pair_set: int, search_id: int) -> int:
    return db.execute(f"SELECT count(DISTINCT group_id) FROM group_rows WHERE group_set = ? AND {VISIBLE}",
                      [pair_set, search_id, search_id]).fetchone()[0]


def set_aside_count(db: Database, search_id: int, policy: groups_.Policy) -> int:
    """How many of a search's pairs decisions set aside, found from the decisions (usually a few),
    not by reading every pair: those decided 'not duplicates', and those of two reference images."""
    aside = set(db.execute(
        "SELECT p.image_a, p.image_b FROM decisions d"
        " JOIN images x ON x.content_hash = d.hash_a JOIN images y ON y.content_hash = d.hash_b"
        " JOIN pairs p ON p.search_id = ? AND p.image_a = min(x.id, y.id) AND p.image_b = max(x.id, y.id)"
        " WHERE d.kind = 'not-duplicates' AND d.revoked_at IS NULL AND (d.hash_a != d.hash_b OR x.id < y.id)",
        [search_id]).fetchall())
    if policy.reference:
        ref = json.dumps(sorted(decisions.reference_ids(db)))
        aside |= set(db.execute(
            f"SELECT image_a, image_b FROM pair_rows WHERE pair_set = ? AND {VISIBLE}"
            " AND image_a IN (SELECT value FROM json_each(?)) AND +image_b IN (SELECT value FROM json_each(?))",
            [chain_of(db, search_id), search_id, search_id, ref, ref]).fetchall())
    return len(aside)


def write_groups(db: Database, search_id: int, roots: tuple[str, ...], px_size: int,
                 orientations: tuple[int, ...], policy: groups_.Policy, *, base_id: int | None = None,
                 changed: set[int] = frozenset()) -> tuple[int, int]:
    """(groups, pairs set aside): every group made again from the search's pairs that decisions
    leave, keepers, and each member's exact MSE to its keeper; groups numbered by their keeper's path.

    Replaces the search's groups in one transaction. A group of ``base_id`` with the same members
    and the same keepers and no image ``changed`` is taken over as it is; only the others cost
    tensor reads."""
    total = db.execute("SELECT count(*) FROM pairs WHERE search_id = ?", [search_id]).fetchone()[0]
    pairs = grouping_pairs(db, search_id, policy)
    comps = groups_.components(pairs[:, 0], pairs[:, 1])
    made = groups_.make_groups(comps, members_of(db, [int(i) for c in comps for i in c]), policy)
    known = group_rows_of(db, base_id) if base_id is not None else {}
    with db.atomic():
        hide_groups(db, search_id)
        store_groups(db, search_id, made, known, changed, roots, px_size, orientations)
    return len(made), total - len(pairs)


def hide_groups(db: Database, search_id: int, group_ids: list[int] | None = None) -> None:
    """Take a search's groups (these, or all) out of it and the searches after it in its chain:
    rows it found itself go, older rows are hidden from it on."""
    pair_set = chain_of(db, search_id)
    where = "" if group_ids is None else " AND group_id IN (SELECT value FROM json_each(?))"
    args = [] if group_ids is None else [json.dumps(sorted(group_ids))]
    db.execute(f"DELETE FROM group_rows WHERE group_set = ? AND found_in = ?{where}", [pair_set, search_id, *args])
    db.execute(f"UPDATE group_rows SET gone_in = ? WHERE group_set = ? AND found_in < ?"
               f" AND (gone_in IS NULL OR gone_in > ?){where}", [search_id, pair_set, search_id, search_id, *args])


def grouping_pairs(db: Database, search_id: int, policy: groups_.Policy, among: list[int] | None = None) -> np.ndarray:
    """(n, 2) pairs of a search that make groups: not decided 'not duplicates', not two reference images."""
    pairs = np.array(decisions.unignored_pairs(db, search_id, among), dtype=np.int64).reshape(-1, 2)
    if policy.reference and len(pairs):  # the archive is trusted: two reference images never make a pair
        ref = np.array(sorted(decisions.reference_ids(db)), dtype=np.int64)
        pairs = pairs[~(np.isin(pairs[:, 0], ref) & np.isin(pairs[:, 1], ref))]
    return pairs


def store_groups(db: Database, search_id: int, made: list[groups_.Group], known: dict, changed: set[int],
                 roots: tuple[str, ...], px_size: int, orientations: tuple[int, ...], batch: int = 4096) -> None:
    """Insert the rows of ``made`` into the search's chain, from the search on: taken over from
    ``known`` where nothing changed, else with each member's exact MSE to the keeper (tensors read
    a batch of groups at a time)."""
    head = (chain_of(db, search_id),)
    fresh, kept = [], []
    for g in made:
        ids = frozenset(m.image_id for m in (g.keeper, *g.others))
        old = known.get(ids)
        if old is not None and not ids & changed and {r[0]: (r[1], r[6]) for r in old} == kept_as(g):
            kept.extend((*head, g.group_id, *row, search_id) for row in old)
        else:
            fresh.append(g)
    db.conn.executemany(ROW_INSERT, kept)
    start = 0
    while start < len(fresh):
        end, size = start, 0
        while end < len(fresh) and (end == start or size + 1 + len(fresh[end].others) <= batch):
            size += 1 + len(fresh[end].others)
            end += 1
        db.conn.executemany(ROW_INSERT, [(*head, *row, search_id) for row in _member_rows(
            db, fresh[start:end], roots, px_size, orientations)])
        start = end


def kept_as(group: groups_.Group) -> dict[int, tuple[int, str | None]]:
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


def _member_rows(db: Database, batch: list[groups_.Group], roots: tuple[str, ...], px_size: int,
                 orientations: tuple[int, ...]) -> list[tuple]:
    """(group_id, image_id, is_keeper, root, mse, rotation, mirrored, keep_reason) of a batch of
    groups: the keeper, then each other member's exact MSE to it."""
    ids = [m.image_id for g in batch for m in (g.keeper, *g.others)]
    tensors = dict(zip(ids, load_tensors(db, ids, px_size)))
    rows = []
    for g in batch:
        root = next((r for r in roots if under(os.path.dirname(g.keeper.path), r)), None)
        rows.append((g.group_id, g.keeper.image_id, 1, root, None, None, None, g.reasons[g.keeper.image_id]))
        others = [m.image_id for m in g.others]
        rows += [(g.group_id, image_id, 0, root, *to_keeper, g.reasons.get(image_id))
                 for image_id, to_keeper in zip(others, mse_to_keeper(tensors, g.keeper.image_id, others,
                                                                     orientations))]
    return rows


def mse_to_keeper(tensors: dict, keeper: int, others: list[int], orientations: tuple[int, ...]) -> list[tuple]:
    """(mse, rotation, mirrored) of each of ``others`` against the keeper, exact, in its best
    orientation (``tensors``: image id -> tensor)."""
    if not others:
        return []
    kept = np.repeat(tensors[keeper][None], len(others), axis=0)
    ssd = np.stack([kernel.exact_ssd(kept, np.stack([tensors[i] for i in others]), o) for o in orientations], axis=1)
    out = []
    for row in ssd:
        k = int(np.argmin(row))
        t = kernel.ORIENTATIONS[orientations[k]]
        out.append((float(row[k]) / tensors[keeper].size, t.rotation, int(t.mirrored)))
    return out


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


def numbered(made: list[groups_.Group], old: dict[int, int], highest: int) -> list[groups_.Group]:
    """Each re-made group takes the smallest old number among its members that no other took; the
    rest get new numbers after ``highest``."""
    taken: set[int] = set()
    out = []
    for g in made:
        members = (g.keeper, *g.others)
        candidates = sorted({old[m.image_id] for m in members if m.image_id in old} - taken)
        if candidates:
            number = candidates[0]
        else:
            highest += 1
            number = highest
        taken.add(number)
        out.append(dataclasses.replace(g, group_id=number))
    return out
