"""An incremental search's groups: only what it changed is written (``persist`` keeps the rest).

Flows in: the pairs the search found, the images it compared again, and the groups that lost or
changed a member since (``stale_groups``). Flows out: the rows of the groups that changed, from
this search on; every other group keeps its rows and its number.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.queries import load_tensors
from imgindex.scan.discover import under
from imgindex.compare import groups as groups_
from imgindex.compare.persist import (ROW_INSERT, VISIBLE, chain_of, group_rows_of, grouping_pairs, hide_groups,
                                      kept_as, members_of, mse_to_keeper, numbered, store_groups)

if TYPE_CHECKING:
    from sqlite_utils import Database


def update_groups(db: Database, search_id: int, found: tuple[np.ndarray, ...], moved: np.ndarray,
                  roots: tuple[str, ...], px_size: int, orientations: tuple[int, ...], policy: groups_.Policy) -> None:
    """Change only the groups an incremental search changed; every other group keeps its rows and
    its number.

    Added pairs only join. When the keeper of what they join is the keeper of one of its groups,
    that group keeps its rows and its number, however large it is, and the rest join it (rows with
    their MSE to the keeper); otherwise they become one group, numbered by the smallest number
    among them. A group holding an image compared again (``moved``: its pairs were hidden,
    ``hide_pairs``), or that lost or changed a member since (``stale_groups``), may split: it is
    made again from its pairs. A group with no old number gets one after the highest."""
    pair_set = chain_of(db, search_id)
    image_a, image_b = found[0], found[1]
    touched = np.union1d(np.asarray(moved, dtype=np.int64), np.union1d(image_a, image_b))
    group_of = dict(db.execute(
        f"SELECT image_id, group_id FROM group_rows WHERE group_set = ? AND {VISIBLE}"
        " AND image_id IN (SELECT value FROM json_each(?))",
        [pair_set, search_id, search_id, json.dumps(touched.tolist())]).fetchall())
    stale = {r[0] for r in db.execute("SELECT group_id FROM stale_groups WHERE group_set = ?", [pair_set])}
    db.execute("DELETE FROM stale_groups WHERE group_set = ?", [pair_set])
    remake = stale | {group_of[i] for i in np.asarray(moved).tolist() if i in group_of}  # they may split
    loose_remade: set[int] = set()
    unions = []
    for groups_in, loose in _joins(counting_pairs(db, np.stack([image_a, image_b], axis=1), policy), group_of):
        if groups_in & remake:
            remake |= groups_in
            loose_remade |= loose
        elif (len(groups_in) > 1 or loose) and not _join(db, search_id, pair_set, groups_in, loose, policy,
                                                           px_size, orientations):
            unions.append((groups_in, loose))
    if unions:
        _unite(db, search_id, pair_set, unions, touched, roots, px_size, orientations, policy)
    if remake or loose_remade:
        _remake(db, search_id, pair_set, remake, loose_remade, touched, roots, px_size, orientations, policy)


def counting_pairs(db: Database, pairs: np.ndarray, policy: groups_.Policy) -> np.ndarray:
    """The pairs (k, 2) that make groups: not decided 'not duplicates', not of two reference images
    (what ``grouping_pairs`` keeps, for pairs in hand)."""
    if len(pairs) == 0:
        return pairs.reshape(0, 2)
    facts = {r[0]: r[1:] for r in db.execute("SELECT id, content_hash, folder FROM images"
                                             " WHERE id IN (SELECT value FROM json_each(?))",
                                             [json.dumps(np.unique(pairs).tolist())])}
    decided = set(db.execute("SELECT hash_a, hash_b FROM decisions"
                             " WHERE kind = 'not-duplicates' AND revoked_at IS NULL").fetchall())
    is_ref = {f: any(under(f, r) for r in policy.reference) for f in {f for _, f in facts.values()}}
    keep = []
    for a, b in pairs.tolist():
        if a not in facts or b not in facts:
            continue
        (ha, fa), (hb, fb) = facts[a], facts[b]
        if (min(ha, hb), max(ha, hb)) not in decided and not (is_ref[fa] and is_ref[fb]):
            keep.append((a, b))
    return np.array(keep, dtype=np.int64).reshape(-1, 2)


def _joins(pairs: np.ndarray, group_of: dict[int, int]) -> list[tuple[set[int], set[int]]]:
    """What added pairs join: per connected part, (the groups in it, the images in none)."""
    parent: dict = {}

    def node(i: int):
        return ("g", group_of[i]) if i in group_of else ("i", i)

    def find(x):
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in pairs.tolist():
        na, nb = node(a), node(b)
        parent.setdefault(na, na)
        parent.setdefault(nb, nb)
        ra, rb = find(na), find(nb)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    parts: dict = {}
    for x in list(parent):
        groups_in, loose = parts.setdefault(find(x), (set(), set()))
        (groups_in if x[0] == "g" else loose).add(x[1])
    return list(parts.values())


def _visible_rows(db: Database, search_id: int, pair_set: int, group_ids, columns: str, extra: str = "") -> list:
    return db.execute(f"SELECT {columns} FROM group_rows WHERE group_set = ? AND {VISIBLE}{extra}"
                      " AND group_id IN (SELECT value FROM json_each(?))",
                      [pair_set, search_id, search_id, json.dumps(sorted(group_ids))]).fetchall()


def _join(db: Database, search_id: int, pair_set: int, groups_in: set[int], loose: set[int], policy: groups_.Policy,
          px_size: int, orientations: tuple[int, ...]) -> bool:
    """Join groups and loose images into the group whose keeper keeps them all, leaving its rows as
    they are; False (nothing written) when the keeper would be a loose image, or a pinned picture
    is involved (which copy is pinned may change).

    Exact: the keeper of a union is its best member by (decision, rule), and each group's keeper
    is its own best, so the union's is the best of the groups' keepers and the loose images,
    as long as no member's standing changes, which only a pinned copy's can."""
    keepers = {r[1]: (r[0], r[2], r[3]) for r in _visible_rows(db, search_id, pair_set, groups_in,
                                                                "group_id, image_id, root, keep_reason",
                                                                " AND is_keeper = 1")}
    if len(keepers) != len(groups_in) or any(reason == "pinned" for _, _, reason in keepers.values()):
        return False
    facts = members_of(db, [*keepers, *loose])
    if len(facts) != len(keepers) + len(loose) or any(facts[i].content_hash in policy.pinned for i in loose):
        return False
    keeper = groups_.choose([*keepers, *loose], facts, policy)[0].image_id
    if keeper not in keepers:
        return False
    winner, root, _ = keepers[keeper]
    others = groups_in - {winner}
    joining = sorted(loose | {r[0] for r in _visible_rows(db, search_id, pair_set, others, "image_id")})
    facts = members_of(db, [keeper, *joining])
    _, _, reasons = groups_.choose([keeper, *joining], facts, policy)
    ids = sorted({keeper, *joining})
    tensors = dict(zip(ids, load_tensors(db, ids, px_size)))
    rows = [(pair_set, winner, image_id, 0, root, *to_keeper, reasons.get(image_id), search_id)
            for image_id, to_keeper in zip(joining, mse_to_keeper(tensors, keeper, joining, orientations))]
    if others:
        hide_groups(db, search_id, sorted(others))
    db.conn.executemany(ROW_INSERT, rows)
    return True


def _unite(db: Database, search_id: int, pair_set: int, unions: list, touched: np.ndarray, roots, px_size: int,
           orientations, policy: groups_.Policy) -> None:
    """Each (groups, loose images) made one group (added pairs joined them; nothing split)."""
    old = dict(_visible_rows(db, search_id, pair_set, {g for groups_in, _ in unions for g in groups_in},
                             "image_id, group_id"))
    members = {}
    for groups_in, loose in unions:
        ids = np.array(sorted({i for i, g in old.items() if g in groups_in} | loose), dtype=np.int64)
        members[ids.tobytes()] = ids
    made = groups_.make_groups(list(members.values()), members_of(db, [int(i) for m in members.values() for i in m]),
                               policy)
    highest = db.execute("SELECT max(group_id) FROM group_rows WHERE group_set = ?", [pair_set]).fetchone()[0] or 0
    made = numbered(made, old, highest)
    hide_groups(db, search_id, sorted({g for groups_in, _ in unions for g in groups_in}))
    store_groups(db, search_id, made, {}, set(touched.tolist()), roots, px_size, orientations)


def _remake(db: Database, search_id: int, pair_set: int, groups: set[int], loose: set[int], touched: np.ndarray,
            roots, px_size: int, orientations, policy: groups_.Policy) -> None:
    """Make ``groups`` and ``loose`` images into groups again from their pairs."""
    known = group_rows_of(db, search_id, sorted(groups)) if groups else {}
    old = dict(_visible_rows(db, search_id, pair_set, groups, "image_id, group_id"))
    among = sorted(set(old) | loose)
    pairs = grouping_pairs(db, search_id, policy, among)
    comps = groups_.components(pairs[:, 0], pairs[:, 1])
    made = groups_.make_groups(comps, members_of(db, [int(i) for c in comps for i in c]), policy)
    highest = db.execute("SELECT max(group_id) FROM group_rows WHERE group_set = ?", [pair_set]).fetchone()[0] or 0
    made = numbered(made, old, highest)
    changed = set(touched.tolist())
    kept_groups, fresh = set(), []
    for g in made:
        ids = frozenset(m.image_id for m in (g.keeper, *g.others))
        rows = known.get(ids)
        if (rows is not None and not ids & changed and {r[0]: (r[1], r[6]) for r in rows} == kept_as(g)
                and old.get(g.keeper.image_id) == g.group_id):
            kept_groups.add(g.group_id)  # the same group as before: its rows stay
        else:
            fresh.append(g)
    hide_groups(db, search_id, sorted(groups - kept_groups))
    store_groups(db, search_id, fresh, {}, changed, roots, px_size, orientations)
