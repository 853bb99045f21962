"""Re-grouping after a decision touches only the groups concerned; the result must equal re-making
every group from scratch, and a group whose members did not change keeps its number."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgindex import Index
from imgindex.compare.regroup import regroup
from imgindex.errors import DecisionError

from test_decisions import same_pixels

SEEDS = 4  # four scenes, each with copies in several folders


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("regroup")
    root = base / "lib"
    files = []
    for seed in range(SEEDS):
        for k, (folder, ext) in enumerate([("a", "png"), ("a", "bmp"), ("b", "tif"), ("b", "ppm"), ("c", "png")]):
            if seed % 2 and k == 4:
                continue
            files.append(same_pixels(root / folder / f"s{seed}-{k}.{ext}", seed, (32, 24)))
    with Index(base / "start.db") as index:
        index.scan(root, px_size=16)
        index.search(processes=1)
    return base, root, [str(f) for f in files]


def state(path) -> tuple[dict, set]:
    """group_id -> (frozenset of members, keeper, {member: reason}) of the latest search, and its pairs."""
    conn = sqlite3.connect(path)
    groups: dict[int, list] = {}
    for gid, image_path, is_keeper, reason in conn.execute(
            "SELECT group_id, path, is_keeper, keep_reason FROM match_groups"):
        groups.setdefault(gid, []).append((image_path, is_keeper, reason))
    pairs = set(conn.execute("SELECT path_a, path_b FROM match_pairs").fetchall())
    counts = conn.execute("SELECT groups, pairs FROM searches WHERE id = (SELECT id FROM latest_search)").fetchone()
    conn.close()
    shaped = {gid: (frozenset(p for p, _, _ in rows), next(p for p, k, _ in rows if k),
                    frozenset((p, r) for p, _, r in rows if r)) for gid, rows in groups.items()}
    assert counts == (len(shaped), len(pairs))  # the searches row says what the views show
    return shaped, pairs


# mostly decisions within one scene (where they change groups), sometimes across scenes
operation = st.tuples(st.sampled_from(["ignore", "ignore", "unignore", "keep", "unkeep", "reference", "unreference"]),
                      st.integers(0, SEEDS - 1), st.lists(st.integers(0, 4), min_size=1, max_size=3), st.booleans())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=6))
def test_a_local_regroup_equals_a_full_one_and_keeps_numbers(built, tmp_path_factory, ops):
    base, root, files = built
    work = tmp_path_factory.mktemp("ops")
    db = work / "i.db"
    shutil.copy(base / "start.db", db)
    folders = [str(root / f) for f in ("a", "b", "c")]
    with Index(db) as index:
        for name, seed, picks, across in ops:
            before, _ = state(db)
            scene = [f for f in files if f"/s{seed}-" in f]
            try:
                if name in ("reference", "unreference"):
                    chosen = [folders[picks[0] % len(folders)]]
                    (index.add_reference if name == "reference" else index.remove_reference)(chosen)
                else:
                    chosen = [scene[p % len(scene)] for p in picks] + ([files[picks[0] * 3 % len(files)]] if across
                                                                       else [])
                    getattr(index, name)(chosen)
            except DecisionError:
                continue  # a refused decision (nothing to take back, byte copies...) changes nothing
            after, _ = state(db)
            by_members = {members: gid for gid, (members, _, _) in before.items()}
            for gid, (members, _, _) in after.items():
                if members in by_members:
                    assert gid == by_members[members], "a group with the same members kept its number"
    shutil.copy(db, work / "full.db")
    with Index(work / "full.db") as full:
        regroup(full.db)  # every group re-made from the pairs and the decisions
    local, local_pairs = state(db)
    fresh, fresh_pairs = state(work / "full.db")
    assert local_pairs == fresh_pairs
    assert sorted(local.values(), key=repr) == sorted(fresh.values(), key=repr)
