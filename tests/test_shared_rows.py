"""Searches that build on one another share their unchanged rows (``compare.persist``): after any
mix of new, moved, changed and removed images, an incremental search shows exactly what a full
search of a copy of the index shows (pairs with their MSE and orientation, groups, keepers, each
member's MSE to its keeper), and every earlier search still shows what it showed when it ended
(less the images that left the index). A search whose base moves under it starts again."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgindex import Index
from imgindex.compare import run as compare
from imgindex.db.runs import now

from test_compare import brute_force, insert, stored_pairs
from test_space import _tight_set


def groups_of(index: Index, search_id: int) -> set[tuple]:
    """Each group as (keeper, frozenset of (member, mse to keeper, rotation, mirrored)), by content."""
    rows = index.db.execute("SELECT group_id, image_id, is_keeper, mse_to_keeper, rotation, mirrored, keep_reason"
                            " FROM group_members WHERE search_id = ?", [search_id]).fetchall()
    by_group: dict[int, list] = {}
    for group_id, *row in rows:
        by_group.setdefault(group_id, []).append(tuple(row))
    out = set()
    for members in by_group.values():
        keeper = [m[0] for m in members if m[1] == 1]
        assert len(keeper) == 1, members
        out.add((keeper[0], frozenset((m[0], None if m[2] is None else round(m[2], 9), m[3], m[4], m[5])
                                      for m in members)))
    return out


def rows_of(index: Index, search_id: int) -> set[tuple]:
    return set(index.db.execute("SELECT * FROM group_members WHERE search_id = ?", [search_id]).fetchall())


def shown(index: Index, search_id: int) -> tuple[dict, set]:
    return stored_pairs(index, search_id), groups_of(index, search_id)


def full_search_of_a_copy(index: Index, tmp_path, options: dict) -> tuple[dict, set]:
    """What a full search finds on a copy of the index as it is now."""
    copy = tmp_path / f"copy-{len(list(tmp_path.glob('copy-*')))}.db"
    target = sqlite3.connect(copy)
    index.db.conn.backup(target)
    target.close()
    with Index(copy) as other:
        report = compare.search(other.db, str(other.path), full=True, **options)
        assert not report.incremental
        return shown(other, report.search_id)


OPS = st.lists(st.tuples(st.sampled_from(["add", "add", "remove", "move", "touch", "pin", "nothing"]),
                         st.integers(1, 6)),
               min_size=2, max_size=5)


@given(st.integers(0, 2**32 - 1), OPS, st.sampled_from(["chunked", "classic"]), st.booleans())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_incremental_searches_equal_full_ones_and_earlier_searches_keep_what_they_showed(tmp_path_factory, seed,
                                                                                         ops, algorithm, rotate):
    tmp_path = tmp_path_factory.mktemp("shared")
    rng = np.random.default_rng(seed)
    pool = _tight_set(rng, 90, 8, 4)
    options = dict(similarity=4.0, rotate=rotate, processes=1, chunksize=9, algorithm=algorithm,
                   keep=("size", "path"))
    with Index(tmp_path / "i.db") as index:
        used = 24
        ids = insert(index, pool[:used])
        first = compare.search(index.db, str(index.path), **options)
        history = {first.search_id: (stored_pairs(index, first.search_id), rows_of(index, first.search_id))}
        for op, k in ops:
            live = [r[0] for r in index.db.execute("SELECT id FROM images ORDER BY id")]
            chosen = [int(i) for i in rng.choice(live, size=min(k, len(live)), replace=False)] if live else []
            if op == "add" and used < len(pool):
                ids += insert(index, pool[used : used + k], folders=[f"/photos/from{used}"] * k)
                used += k
            elif op == "remove":
                index.db.execute(f"DELETE FROM images WHERE id IN ({','.join('?' * len(chosen))})", chosen)
            elif op == "move":
                for i in chosen:
                    index.db.execute("UPDATE images SET path = path || '.moved', moved_at = ? WHERE id = ?",
                                     [now(), i])
            elif op == "touch":  # bigger files: the keeper rule ('size') may choose another keeper
                for i in chosen:
                    index.db.execute("UPDATE images SET size = size + 100000 WHERE id = ?", [i])
            elif op == "pin" and chosen:  # a decision: the latest search is regrouped at once
                index.keep([index.db.execute("SELECT path FROM images WHERE id = ?", [chosen[0]]).fetchone()[0]])
                latest = max(history)  # which it may change, as decisions do
                history[latest] = (history[latest][0], rows_of(index, latest))
            report = compare.search(index.db, str(index.path), **options)
            assert report.incremental and report.base_search_id == max(history)
            seen = shown(index, report.search_id)
            assert seen == full_search_of_a_copy(index, tmp_path, options), (op, k)
            tensors = {i: t for i, t in zip(*_stored(index))}
            assert seen[0] == brute_force(tensors, 4.0, rotate)
            counted = index.db.execute("SELECT pairs, groups, set_aside FROM searches WHERE id = ?",
                                       [report.search_id]).fetchone()
            assert counted == (len(seen[0]), len(seen[1]), 0) == (report.pairs, report.groups, report.set_aside)
            history[report.search_id] = (seen[0], rows_of(index, report.search_id))
        present = {r[0] for r in index.db.execute("SELECT id FROM images")}
        for search_id, (pairs, rows) in history.items():  # earlier searches: what they showed, less the removed
            assert stored_pairs(index, search_id) == {p: v for p, v in pairs.items() if set(p) <= present}, search_id
            assert rows_of(index, search_id) == {r for r in rows if r[2] in present}, search_id


def _stored(index: Index):
    ids, tensors = [], []
    for image_id, blob in index.db.execute("SELECT image_id, tensor FROM tensors ORDER BY image_id"):
        ids.append(image_id)
        tensors.append(np.frombuffer(blob, dtype=np.uint8).reshape(8, 8, 3))
    return ids, tensors


def test_a_search_whose_base_moves_under_it_starts_again_on_the_new_one(tmp_path):
    rng = np.random.default_rng(5)
    pool = _tight_set(rng, 60, 8, 4)
    options = dict(similarity=4.0, processes=1, chunksize=9, algorithm="chunked")
    with Index(tmp_path / "i.db") as index:
        insert(index, pool[:30])
        first = compare.search(index.db, str(index.path), **options)
        insert(index, pool[30:40])
        overtaken = []

        def meanwhile(_progress) -> None:  # another process finishes a search of the same chain first
            if not overtaken:
                with Index(tmp_path / "i.db") as other:
                    overtaken.append(compare.search(other.db, str(other.path), **options))

        report = compare.search(index.db, str(index.path), progress=meanwhile, **options)
        assert overtaken and overtaken[0].base_search_id == first.search_id
        assert report.incremental and report.base_search_id == overtaken[0].search_id
        assert shown(index, report.search_id) == shown(index, overtaken[0].search_id)
        assert shown(index, report.search_id) == full_search_of_a_copy(index, tmp_path, options)
        assert stored_pairs(index, report.search_id)


def test_a_removed_member_and_a_changed_keeper_remake_only_their_group(tmp_path):
    rng = np.random.default_rng(9)
    pool = _tight_set(rng, 60, 8, 4)
    options = dict(similarity=4.0, processes=1, chunksize=9, algorithm="chunked", keep=("size", "path"))
    with Index(tmp_path / "i.db") as index:
        insert(index, pool)
        first = compare.search(index.db, str(index.path), **options)
        groups = index.db.execute("SELECT group_id, group_concat(image_id) FROM group_members WHERE search_id = ?"
                                  " GROUP BY group_id HAVING count(*) >= 2", [first.search_id]).fetchall()
        assert len(groups) >= 3
        (gone_group, gone_members), (touched_group, touched_members) = groups[0], groups[1]
        index.db.execute("DELETE FROM images WHERE id = ?", [int(gone_members.split(",")[0])])
        loser = index.db.execute("SELECT image_id FROM group_members WHERE search_id = ? AND group_id = ?"
                                 " AND is_keeper = 0", [first.search_id, touched_group]).fetchone()[0]
        index.db.execute("UPDATE images SET size = size + 100000 WHERE id = ?", [loser])  # now the largest
        report = compare.search(index.db, str(index.path), **options)
        assert report.incremental and report.new_images == 0
        keeper = index.db.execute("SELECT image_id FROM group_members WHERE search_id = ? AND is_keeper = 1"
                                  " AND group_id = ?", [report.search_id, touched_group]).fetchone()
        assert keeper == (loser,)
        rewritten = {r[0] for r in index.db.execute("SELECT DISTINCT group_id FROM group_rows WHERE found_in = ?",
                                                    [report.search_id])}
        assert rewritten <= {gone_group, touched_group}  # the others kept their rows
        assert shown(index, report.search_id) == full_search_of_a_copy(index, tmp_path, options)
