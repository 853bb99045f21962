"""Review decisions, for real: files on disk, a real index, real scans and searches.

Not duplicates, pinned keepers and reference folders are kept by content, survive renames,
moves, byte copies and rescans, shape every search (full and incremental alike) and are never
overridden by an action.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from imgindex import Index
from imgindex.errors import DecisionError

from helpers import inventory, photo_like, write_image


def same_pixels(path, seed: int, size=(96, 72)):
    """Another file (other bytes, other hash) with exactly the pixels of ``photo_like(seed)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    photo_like(seed, size).save(path)
    return path


def groups(index: Index) -> list[set[str]]:
    """The latest search's groups as sets of file names, sorted."""
    found: dict[int, set[str]] = {}
    for group_id, path in index.db.execute("SELECT group_id, path FROM match_groups"):
        found.setdefault(group_id, set()).add(os.path.basename(path))
    return sorted(found.values(), key=sorted)


def kept(index: Index) -> dict[str, str]:
    """name -> keep_reason of every kept member of the latest search."""
    return {os.path.basename(p): r for p, r in index.db.execute(
        "SELECT path, keep_reason FROM match_groups WHERE keep_reason IS NOT NULL")}


def pairs(index: Index) -> set[frozenset[str]]:
    return {frozenset((os.path.basename(a), os.path.basename(b)))
            for a, b in index.db.execute("SELECT path_a, path_b FROM match_pairs")}


def search(index: Index, **options):
    return index.search(processes=1, **options)


# ---------------------------------------------------------------- not duplicates


def test_not_duplicates_survives_rename_move_byte_copy_and_rescan(tmp_path, index):
    root = tmp_path / "photos"
    same_pixels(root / "twin-a.png", 1)
    same_pixels(root / "twin-a.bmp", 1)  # the same pixels: a match at MSE 0
    write_image(root / "other.png", seed=2)
    index.scan(root)
    assert search(index).pairs == 1
    report = index.ignore([root / "twin-a.png", root / "twin-a.bmp"], note="twins")
    assert len(report.added) == 1 and report.groups == 0
    assert groups(index) == [] and pairs(index) == set()  # the views follow at once, no search needed
    assert index.lower_quality() == []

    os.rename(root / "twin-a.png", root / "renamed.png")  # a rename
    (root / "sub").mkdir()
    shutil.move(root / "twin-a.bmp", root / "sub" / "moved.bmp")  # a move
    index.scan(root)
    assert search(index).pairs == 0
    assert search(index, full=True).pairs == 0  # a full search too
    shutil.copy(root / "sub" / "moved.bmp", root / "byte copy.bmp")  # a byte copy of one of the two
    index.scan(root)
    found = search(index)
    assert pairs(index) == {frozenset({"moved.bmp", "byte copy.bmp"})}  # its pair with renamed.png stays ignored
    assert found.pairs == 1 and found.set_aside == 2
    row = index.db.execute("SELECT kind, path_a, path_b, note FROM decisions").fetchone()
    assert row[0] == "not-duplicates" and row[3] == "twins"  # the paths at the time, for the record
    assert {os.path.basename(row[1]), os.path.basename(row[2])} == {"twin-a.png", "twin-a.bmp"}


def test_a_new_copy_still_joins_an_ignored_pair_and_decisions_split_groups(tmp_path, index):
    root = tmp_path / "photos"
    for name in ("a.png", "a.bmp", "a.tif"):
        same_pixels(root / name, 1)
    for name in ("b.png", "b.bmp"):
        same_pixels(root / name, 2)
    index.scan(root)
    search(index)
    assert groups(index) == [{"a.png", "a.bmp", "a.tif"}, {"b.png", "b.bmp"}]
    index.ignore([root / "a.png", root / "a.bmp", root / "a.tif"])  # three pairs at once
    index.ignore([root / "b.png", root / "b.bmp"])
    assert groups(index) == []
    same_pixels(root / "a-new.ppm", 1)  # a new copy matches each of them: decisions are about pairs
    index.scan(root)
    found = search(index)
    assert found.incremental and found.new_images == 1
    assert groups(index) == [{"a.png", "a.bmp", "a.tif", "a-new.ppm"}]
    index.unignore([root / "b.png", root / "b.bmp"])
    assert groups(index)[1:] == [{"b.png", "b.bmp"}]


def test_a_group_split_by_a_decision_is_two_groups(tmp_path, index):
    root = tmp_path / "photos"
    same_pixels(root / "x1.png", 1)
    same_pixels(root / "x2.bmp", 1)
    index.scan(root)
    search(index)
    # x1 ~ x2 ~ x3 ~ x4 as one group, then 'x2 and x3 are different' leaves {x1, x2} and {x3, x4}
    same_pixels(root / "x3.tif", 1)
    same_pixels(root / "x4.ppm", 1)
    index.scan(root)
    search(index)
    assert groups(index) == [{"x1.png", "x2.bmp", "x3.tif", "x4.ppm"}]
    index.ignore([root / "x1.png", root / "x3.tif"])
    index.ignore([root / "x1.png", root / "x4.ppm"])
    index.ignore([root / "x2.bmp", root / "x3.tif"])
    index.ignore([root / "x2.bmp", root / "x4.ppm"])
    assert groups(index) == [{"x1.png", "x2.bmp"}, {"x3.tif", "x4.ppm"}]


# ---------------------------------------------------------------- pinned keepers


def test_a_pinned_keeper_wins_survives_a_move_and_is_never_acted_on(tmp_path, index):
    root = tmp_path / "photos"
    same_pixels(root / "big.png", 1, (192, 144))
    same_pixels(root / "small.png", 1, (96, 72))
    index.scan(root)
    search(index, same_dim=False, similarity=6)
    assert kept(index) == {"big.png": "rule"}
    index.keep([root / "small.png"])
    assert kept(index) == {"small.png": "pinned"}
    assert index.lower_quality() == [str(root / "big.png")]
    os.rename(root / "small.png", root / "small-renamed.png")
    index.scan(root)
    search(index)  # the profile: the first search's settings
    assert kept(index) == {"small-renamed.png": "pinned"}
    index.unkeep([root / "small-renamed.png"])
    assert kept(index) == {"big.png": "rule"}


def three_copies(root, index: Index) -> None:
    """a.png, b.bmp, c.tif: one picture in three files (other bytes, the same pixels), scanned and searched."""
    for name in ("a.png", "b.bmp", "c.tif"):
        same_pixels(root / name, 1)
    index.scan(root)
    search(index)


def test_two_pinned_images_in_one_group_are_both_kept_and_neither_is_acted_on(tmp_path, index):
    root = tmp_path / "photos"
    three_copies(root, index)
    index.keep([root / "b.bmp", root / "c.tif"])
    assert kept(index) == {"b.bmp": "pinned", "c.tif": "pinned"}
    assert index.lower_quality() == [str(root / "a.png")]
    plan = index.plan_delete()
    assert [a.source for a in plan.actions] == [str(root / "a.png")]
    before = inventory(root)
    index.move_to(tmp_path / "dups")
    after = inventory(root)
    assert {os.path.basename(p) for p in after} == {"b.bmp", "c.tif"}
    assert all(after[p] == before[p] for p in after)


def test_pinning_a_byte_copy_moves_the_pin_and_says_so(tmp_path, index):
    root = tmp_path / "photos"
    same_pixels(root / "a.png", 1)
    shutil.copy(root / "a.png", root / "a copy.png")
    same_pixels(root / "a.bmp", 1)
    index.scan(root)
    search(index)
    index.keep([root / "a.png"])
    assert kept(index) == {"a.png": "pinned"}  # of two byte copies, only the one pinned is kept
    report = index.keep([root / "a copy.png"])
    assert [d.id for d in report.replaced] == [1] and "byte copy" in report.notes[0]
    assert kept(index) == {"a copy.png": "pinned"}
    assert index.keep([root / "a copy.png"]).unchanged  # deciding it again changes nothing


def test_a_decision_made_after_planning_is_honoured_when_applying(tmp_path, index):
    root = tmp_path / "photos"
    three_copies(root, index)
    plan = index.plan_delete()
    assert len(plan.actions) == 2
    victim = plan.actions[0].source
    index.keep([victim])  # say, from the review app while the plan was on screen
    report = index.apply(plan)
    outcomes = {o.source: (o.outcome, o.message) for o in report.outcomes}
    assert outcomes[victim][0] == "skipped" and "pinned keeper" in outcomes[victim][1]
    assert os.path.exists(victim)


# ---------------------------------------------------------------- reference folders


def test_reference_images_are_kept_untouched_and_not_compared_with_each_other(tmp_path, index):
    archive, new = tmp_path / "lib" / "archive", tmp_path / "lib" / "new"
    same_pixels(archive / "a.png", 1)
    same_pixels(archive / "a-again.bmp", 1)  # duplicates inside the archive: trusted, never paired
    write_image(archive / "b.png", seed=2)
    same_pixels(new / "a-copy.tif", 1)
    same_pixels(new / "c.png", 3)
    same_pixels(new / "c.bmp", 3)
    index.scan(tmp_path / "lib", reference=[archive])
    found = search(index)
    assert pairs(index) == {frozenset({"a.png", "a-copy.tif"}), frozenset({"a-again.bmp", "a-copy.tif"}),
                            frozenset({"c.png", "c.bmp"})}
    assert found.pairs == 3
    assert kept(index) == {"a.png": "reference", "a-again.bmp": "reference", "c.bmp": "rule"}
    before = inventory(archive)
    index.move_to(tmp_path / "dups")
    assert inventory(archive) == before
    assert sorted(os.listdir(new)) == ["c.bmp"]


def test_reference_pairs_are_planned_k_times_n_not_n_squared(tmp_path, index):
    archive, new = tmp_path / "lib" / "archive", tmp_path / "lib" / "new"
    for i in range(30):
        same_pixels(archive / f"same-{i}.{'png' if i % 2 else 'bmp'}", 1, (24, 24))
    same_pixels(new / "copy.tif", 1, (24, 24))
    index.scan(tmp_path / "lib", reference=[archive], px_size=16)
    found = index.search(processes=1, similarity=1)
    assert found.pairs == 30  # the new copy against each archived one; none of the 435 archive pairs
    assert index.db.execute("SELECT count(*) FROM pairs WHERE search_id = ?", [found.search_id]).fetchone() == (30,)


def test_removing_a_reference_folder_compares_its_images_with_each_other(tmp_path, index):
    archive = tmp_path / "lib" / "archive"
    same_pixels(archive / "a.png", 1)
    same_pixels(archive / "a.bmp", 1)
    index.scan(tmp_path / "lib", reference=[archive])
    assert search(index).pairs == 0
    index.remove_reference([archive])
    found = search(index)
    assert found.incremental and found.pairs == 1
    assert index.search(full=True, processes=1).pairs == 1


# ---------------------------------------------------------------- incremental equals full


def snapshot(index: Index):
    rows = index.db.execute("SELECT group_id, path, is_keeper, keep_reason FROM match_groups").fetchall()
    by_group: dict[int, list] = {}
    for group_id, path, is_keeper, reason in rows:
        by_group.setdefault(group_id, []).append((path, is_keeper, reason))
    return pairs(index), sorted(sorted(g) for g in by_group.values())


def test_incremental_search_with_decisions_equals_a_full_one(tmp_path):
    root = tmp_path / "lib"
    for seed in range(6):
        same_pixels(root / "old" / f"p{seed}.png", seed)
        same_pixels(root / "old" / f"p{seed}.bmp", seed)
    same_pixels(root / "archive" / "p0.tif", 0)
    with Index(tmp_path / "inc.db") as inc:
        inc.scan(root, reference=[root / "archive"])
        search(inc)
        inc.ignore([root / "old" / "p1.png", root / "old" / "p1.bmp"])
        inc.keep([root / "old" / "p2.bmp"])
        for seed in (1, 2, 3, 9):  # new copies, one of them of nothing indexed yet
            same_pixels(root / "new" / f"p{seed}.tif", seed)
        same_pixels(root / "new" / "p9.png", 9)
        inc.scan(root)
        inc.ignore([root / "new" / "p9.png", root / "new" / "p9.tif"])  # ignored before it is searched
        found = search(inc)
        assert found.incremental and found.new_images == 5
        incremental = snapshot(inc)
    shutil.copy(tmp_path / "inc.db", tmp_path / "full.db")
    with Index(tmp_path / "full.db") as full:
        assert not search(full, full=True).incremental
        assert snapshot(full) == incremental
    assert frozenset({"p9.png", "p9.tif"}) not in incremental[0]
    assert frozenset({"p1.png", "p1.bmp"}) not in incremental[0]


# ---------------------------------------------------------------- the profile


def test_the_first_search_sets_the_profile_and_others_say_they_differ(tmp_path, index):
    root = tmp_path / "photos"
    same_pixels(root / "a.png", 1)
    index.scan(root)
    assert index.profile is None
    assert search(index, similarity="similar").off_profile == ()
    assert index.profile.similarity == "similar"
    plain = search(index)  # nothing given: the profile's settings
    assert plain.similarity == "similar" and plain.off_profile == ()
    other = search(index, similarity="duplicates", mirror=True)
    assert other.off_profile == ("similarity", "mirror")
    assert index.profile.similarity == "similar"  # one run's options stay that run's
    search(index, similarity="duplicates", save_profile=True)
    assert index.profile.similarity == "duplicates"
    assert index.status().profile == index.profile
    index.configure(keep="oldest,path")
    assert index.profile.keep == ("oldest", "path")
    assert search(index).off_profile == ()


# ---------------------------------------------------------------- bad input


def test_bad_decisions_are_refused_with_what_to_do(tmp_path, index):
    root = tmp_path / "photos"
    same_pixels(root / "a.png", 1)
    same_pixels(root / "b.png", 2)
    shutil.copy(root / "a.png", root / "a copy.png")
    index.scan(root)
    search(index)
    with pytest.raises(DecisionError, match="not in the index: there is no such file"):
        index.ignore([root / "a.png", root / "nope.png"])
    with pytest.raises(DecisionError, match="at least two different images"):
        index.ignore([root / "a.png", root / "a.png"])
    with pytest.raises(DecisionError, match="byte-identical"):
        index.ignore([root / "a.png", root / "a copy.png"])
    report = index.ignore([root / "a.png", root / "b.png", root / "b.png"])
    assert any("given twice" in n for n in report.notes)
    assert any("not a match in the latest search" in n for n in report.notes)
    with pytest.raises(DecisionError, match="no decision 'not duplicates'"):
        index.unignore([root / "a.png", root / "a copy.png"])
    with pytest.raises(DecisionError, match="None of these images is pinned"):
        index.unkeep([root / "a.png"])
    with pytest.raises(DecisionError, match="does not exist"):
        index.add_reference([tmp_path / "missing"])
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DecisionError, match="not under a scanned folder"):
        index.add_reference([tmp_path / "elsewhere"])
    with pytest.raises(DecisionError, match="is not a reference folder"):
        index.remove_reference([root])
    with pytest.raises(DecisionError, match="no group 7"):
        index.ignore_group(7)
    with pytest.raises(Exception, match="Unknown keeper criterion 'bogus'"):
        index.configure(keep="resolution,bogus")
    assert index.db.execute("SELECT count(*) FROM decisions").fetchone() == (1,)


def test_decisions_are_plain_sql(tmp_path, index):
    root = tmp_path / "photos"
    same_pixels(root / "archive" / "a.png", 1)
    same_pixels(root / "a.bmp", 1)
    same_pixels(root / "b.png", 2)
    same_pixels(root / "b.bmp", 2)
    index.scan(root, reference=[root / "archive"])
    search(index)
    index.keep([root / "b.bmp"])
    conn = sqlite3.connect(index.path)
    rows = conn.execute("SELECT kind, path FROM decided_images ORDER BY kind, path").fetchall()
    assert rows == [("keep", str(root / "b.bmp")), ("reference", str(root / "archive" / "a.png"))]
    assert conn.execute("SELECT path, keep_reason FROM match_groups WHERE keep_reason IS NOT NULL ORDER BY path"
                        ).fetchall() == [(str(root / "archive" / "a.png"), "reference"), (str(root / "b.bmp"), "pinned")]
    conn.close()


def test_a_reviewed_group_stays_reviewed_through_a_rename_and_a_new_copy_makes_it_new(tmp_path, index):
    root = tmp_path / "photos"
    three_copies(root, index)
    assert index.mark_reviewed([1]) == 1 and index.mark_reviewed([1]) == 0  # idempotent

    def reviewed() -> bool:
        conn = sqlite3.connect(index.path)
        hashes = [r[0] for r in conn.execute("SELECT i.content_hash FROM match_groups g JOIN images i"
                                             " ON i.id = g.image_id")]
        from imgindex.db.decisions import members_key

        found = conn.execute("SELECT count(*) FROM reviews WHERE members = ?", [members_key(hashes)]).fetchone()[0]
        conn.close()
        return found == 1

    assert reviewed()
    os.rename(root / "a.png", root / "renamed.png")
    index.scan(root)
    search(index)
    assert reviewed()
    same_pixels(root / "d.ppm", 1)
    index.scan(root)
    search(index)
    assert not reviewed()  # something new to look at
    with pytest.raises(DecisionError, match="no group 5"):
        index.mark_reviewed([5])
