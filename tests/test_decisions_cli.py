"""The decision commands as a user types them: messages, exit codes, the profile, the watcher."""

from __future__ import annotations

import os
import shutil

import pytest

from test_decisions import same_pixels
from test_watch import query, wait_for, watching

from helpers import invoke, write_image


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "lib"
    same_pixels(root / "archive" / "a.png", 1)
    same_pixels(root / "new" / "a.bmp", 1)
    same_pixels(root / "new" / "b.png", 2)
    same_pixels(root / "new" / "b.bmp", 2)
    shutil.copy(root / "new" / "b.png", root / "new" / "b copy.png")
    write_image(root / "new" / "c.png", seed=3)
    return root


def test_ignore_keep_and_their_lists(tmp_path, library):
    db = tmp_path / "i.db"
    assert invoke("find", library, "--db", db, "--processes", 1).returncode == 0
    new = library / "new"
    ran = invoke("ignore", new / "b.png", new / "b.bmp", "--db", db, "--note", "different shots")
    assert ran.returncode == 0, ran.stderr
    assert "Recorded 1 decision" in ran.stdout and "groups are updated: 2 groups" in ran.stdout
    listed = invoke("ignore", "--list", "--db", db).stdout
    assert "1 not duplicates in force" in listed and "(different shots)" in listed
    assert "b.bmp" in listed
    ran = invoke("keep", new / "a.bmp", "--db", db)
    assert ran.returncode == 0 and "pinned keeper" in ran.stdout
    table = invoke("search", "--db", db, "--processes", 1).stdout
    assert f"keep  {new / 'a.bmp'}" in table and "pinned" in table
    ran = invoke("keep", new / "a.bmp", "--db", db)
    assert "Already decided, unchanged" in ran.stdout
    status = invoke("status", "--db", db).stdout
    assert "Decisions: 1 pair not duplicates, 1 pinned keeper" in status and "Search profile: duplicates" in status
    ran = invoke("unignore", new / "b.png", new / "b.bmp", "--db", db)
    assert ran.returncode == 0 and "Took back 1 decision" in ran.stdout
    assert "No not duplicates recorded." in invoke("ignore", "--list", "--db", db).stdout


def test_bad_input_exits_1_or_2_with_a_message_and_records_nothing(tmp_path, library):
    db = tmp_path / "i.db"
    invoke("find", library, "--db", db, "--processes", 1)
    new = library / "new"
    ran = invoke("ignore", new / "b.png", tmp_path / "nope.png", "--db", db)
    assert ran.returncode == 1 and "is not in the index: there is no such file" in ran.stderr
    ran = invoke("ignore", new / "b.png", new / "b copy.png", "--db", db)
    assert ran.returncode == 1 and "byte-identical" in ran.stderr
    ran = invoke("ignore", new / "b.png", "--group", 1, "--db", db)
    assert ran.returncode == 2 and "not both" in ran.stderr
    ran = invoke("ignore", "--group", 9, "--db", db)
    assert ran.returncode == 1 and "no group 9" in ran.stderr
    ran = invoke("unkeep", new / "b.png", "--db", db)
    assert ran.returncode == 1 and "None of these images is pinned" in ran.stderr
    ran = invoke("search", "--db", db, "--reference", tmp_path / "missing")
    assert ran.returncode == 2 and "does not exist" in ran.stderr
    (tmp_path / "outside").mkdir()
    ran = invoke("search", "--db", db, "--reference", tmp_path / "outside")
    assert ran.returncode == 1 and "not under a scanned folder" in ran.stderr
    ran = invoke("search", "--db", db, "--keep", "sharpest")
    assert ran.returncode == 1 and "Unknown keeper criterion 'sharpest'" in ran.stderr
    ran = invoke("unreference", library / "archive", "--db", db)
    assert ran.returncode == 1 and "is not a reference folder" in ran.stderr
    assert "No decisions recorded." in invoke("decisions", "--db", db).stdout
    ran = invoke("ignore", new / "b.png", new / "c.png", new / "c.png", "--db", db)  # given twice; not a match
    assert ran.returncode == 0
    assert "given twice" in ran.stderr and "not a match in the latest search" in ran.stderr


def test_reference_on_find_and_the_plan_leaves_it_alone(tmp_path, library):
    db = tmp_path / "i.db"
    ran = invoke("find", library / "new", "--reference", library / "archive", "--db", db, "--processes", 1)
    assert ran.returncode == 0, ran.stderr
    assert f"keep  {library / 'archive' / 'a.png'}" in ran.stdout and "reference folder" in ran.stdout
    plan = invoke("delete", "--db", db, "--dry-run").stdout
    assert str(library / "new" / "a.bmp") in plan and "archive" not in plan
    assert "reference folder" in invoke("decisions", "--db", db).stdout


def test_a_search_off_the_profile_says_so_and_save_profile_changes_it(tmp_path, library):
    db = tmp_path / "i.db"
    invoke("find", library, "--db", db, "--processes", 1)
    ran = invoke("search", "--db", db, "--similarity", "similar", "--processes", 1)
    assert "differ from the index's profile" in ran.stderr and "--save-profile" in ran.stderr
    ran = invoke("search", "--db", db, "--similarity", "similar", "--save-profile", "--processes", 1)
    assert "differ" not in ran.stderr
    assert "Search profile: similar (MSE 6)" in invoke("config", "--db", db).stdout
    ran = invoke("config", "--db", db, "--keep", "oldest,path", "--prefer-folder", library / "new")
    assert ran.returncode == 0 and "keeper: folder,oldest,path preferring" in ran.stdout
    ran = invoke("config", "--db", db, "--no-prefer-folder")
    assert ran.returncode == 0 and ran.stdout.strip().endswith("keeper: oldest,path")


@pytest.mark.slow
def test_the_watcher_uses_the_profile_and_keeps_decisions_through_its_events(tmp_path, library):
    db = tmp_path / "i.db"
    new = library / "new"
    invoke("find", library, "--db", db, "--processes", 1, "--similarity", "similar")  # the profile: similar
    invoke("ignore", new / "b.png", new / "b.bmp", "--db", db)
    with watching(library, db) as proc:
        os.rename(new / "b.bmp", new / "b renamed.bmp")
        wait_for(db, "SELECT count(*) FROM images WHERE path = ?", lambda r: r == [(1,)], (str(new / "b renamed.bmp"),),
                 proc=proc)
        same_pixels(new / "b-new.tif", 2)  # a new copy of b: joins both, the ignored pair stays out
        rows = wait_for(db, "SELECT path_a, path_b FROM match_pairs", lambda r: any("b-new" in a + b for a, b in r),
                        proc=proc)
        shown = {frozenset((os.path.basename(a), os.path.basename(b))) for a, b in rows}
        assert frozenset({"b.png", "b renamed.bmp"}) not in shown
        assert frozenset({"b.png", "b-new.tif"}) in shown and frozenset({"b renamed.bmp", "b-new.tif"}) in shown
    watcher_searches = query(db, "SELECT DISTINCT similarity FROM searches WHERE id > 1")
    assert watcher_searches == [("similar",)]


@pytest.mark.slow
def test_watch_with_a_reference_folder_watches_it_and_never_pairs_it_with_itself(tmp_path, library):
    db = tmp_path / "w.db"
    archive, new = library / "archive", library / "new"
    same_pixels(archive / "a-again.tif", 1)  # two copies inside the archive: trusted, never a pair
    with watching(new, db, "--reference", archive) as proc:
        assert query(db, "SELECT kind, path_a FROM decisions") == [("reference", str(archive))]
        same_pixels(new / "a-new.ppm", 1)
        rows = wait_for(db, "SELECT path, keep_reason FROM match_groups WHERE path LIKE '%a-new.ppm'",
                        lambda r: len(r) == 1, proc=proc)
        assert rows == [(str(new / "a-new.ppm"), None)]
        shown = query(db, "SELECT path_a, path_b FROM match_pairs")
        assert not any(a.startswith(str(archive)) and b.startswith(str(archive)) for a, b in shown)
        kept = dict(query(db, "SELECT path, keep_reason FROM match_groups WHERE keep_reason IS NOT NULL"))
        assert kept[str(archive / "a.png")] == "reference" and kept[str(archive / "a-again.tif")] == "reference"
    assert proc.returncode == 0
