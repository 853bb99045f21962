"""Re-make a search's groups after decisions, in place: nothing is compared again.

Pairs are facts about pixels; decisions only change which pairs count and who is kept. A
decision touches a few images: only the groups holding them are re-made, and every other
group keeps its rows and its number (so `imgindex ignore --group 13` after `--group 12` still
means the group the user saw). A part split off a group gets a new number, after the highest.
A changed keeper rule re-makes them all.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from imgindex.compare import groups as groups_
from imgindex.compare import kernel
from imgindex.compare.groups import DEFAULT_RULE, Policy
from imgindex.compare.persist import (chain_of, count_groups, count_pairs, grouping_pairs, group_rows_of, hide_groups,
                                      members_of, numbered, set_aside_count, store_groups, write_groups)
from imgindex.compare.profile import Profile
from imgindex.compare.settings import Settings, stored_settings
from imgindex.db import decisions
from imgindex.db.connect import write_transaction

if TYPE_CHECKING:
    from sqlite_utils import Database


def policy_of(db: Database, settings: Settings) -> Policy:
    """The keeper rule a search runs with, and the decisions in force now."""
    return Policy(settings.keep or DEFAULT_RULE, settings.prefer_folders, decisions.pinned(db), settings.reference)


def regroup(db: Database, search_id: int | None = None, *, keeper: Profile | None = None,
            touching: set[int] | None = None) -> int | None:
    """Re-make the groups of the latest (or given) completed search under today's decisions.

    ``touching``: only the groups holding these image ids (None: all). ``keeper``: a profile whose
    keeper rule the search takes from now on (all groups are re-made). Returns the number of
    groups, or None when there is no search yet.
    """
    search_id = search_id or db.execute("SELECT id FROM latest_search").fetchone()[0]
    if search_id is None:
        return None
    with write_transaction(db):  # decisions read and groups written under one lock: no decision slips between
        version = decisions.version(db)
        settings = dataclasses.replace(stored_settings(db, search_id), reference=decisions.reference_folders(db))
        if keeper is not None:
            settings = dataclasses.replace(settings, keep=keeper.keep, prefer_folders=keeper.prefer_folders)
            touching = None
        orientations = kernel.orientation_indices(settings.rotate, settings.mirror)
        roots = settings.roots if settings.in_folder else ()
        policy = policy_of(db, settings)
        if touching is None:
            write_groups(db, search_id, roots, settings.px_size, orientations, policy, base_id=search_id)
        elif touching:
            _regroup_around(db, search_id, touching, roots, settings.px_size, orientations, policy)
        pair_set = chain_of(db, search_id)
        n_groups = count_groups(db, pair_set, search_id)
        total = count_pairs(db, pair_set, search_id)
        shown = total - set_aside_count(db, search_id, policy)  # what match_pairs shows
        # revision: a search building on this one meanwhile sees the change and starts again
        db.execute("UPDATE searches SET groups = ?, pairs = ?, set_aside = ?, decisions_version = ?, keep_rule = ?,"
                   " revision = revision + 1 WHERE id = ?",
                   [n_groups, shown, total - shown, version, settings.keep_rule, search_id])
    return n_groups


def regroup_if_stale(db: Database) -> None:
    """Before acting: make sure the latest search's groups reflect every decision made since it ran."""
    row = db.execute("SELECT id, decisions_version FROM searches WHERE id = (SELECT id FROM latest_search)").fetchone()
    if row is not None and row[1] != decisions.version(db):
        regroup(db, row[0])


def _regroup_around(db: Database, search_id: int, touching: set[int], roots, px_size: int, orientations,
                    policy: Policy) -> None:
    """Re-make the groups holding ``touching`` or their partners in a pair (whose pair may count now, or
    no longer); keep the rest. Any pair whose standing a decision changes has a touched image, so no
    pair leads from the images re-made to a group kept."""
    given = json.dumps(sorted(touching))
    partners = db.execute(
        "SELECT image_a, image_b FROM pairs WHERE search_id = ? AND (image_a IN (SELECT value FROM json_each(?))"
        " OR image_b IN (SELECT value FROM json_each(?)))", [search_id, given, given]).fetchall()
    touching = touching | {i for pair in partners for i in pair}
    ids = json.dumps(sorted(touching))
    old = dict(db.execute("SELECT image_id, group_id FROM group_members WHERE search_id = ? AND group_id IN"
                          " (SELECT group_id FROM group_members WHERE search_id = ? AND image_id IN"
                          " (SELECT value FROM json_each(?)))", [search_id, search_id, ids]).fetchall())
    among = sorted(set(old) | touching)
    pairs = grouping_pairs(db, search_id, policy, among)
    comps = groups_.components(pairs[:, 0], pairs[:, 1])
    made = groups_.make_groups(comps, members_of(db, [int(i) for c in comps for i in c]), policy)
    affected = sorted(set(old.values()))
    known = group_rows_of(db, search_id, affected)
    highest = db.execute("SELECT max(group_id) FROM group_members WHERE search_id = ?", [search_id]).fetchone()[0] or 0
    made = numbered(made, old, highest)
    hide_groups(db, search_id, affected)
    store_groups(db, search_id, made, known, set(), roots, px_size, orientations)
