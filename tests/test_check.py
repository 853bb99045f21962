"""imgindex check: a sound index passes; each broken invariant is found, --repair fixes what it can,
and no photo is ever touched."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import tempfile
from pathlib import Path

from test_decisions import same_pixels

from helpers import as_nobody, inventory, invoke, photo_like


def library(tmp_path):
    root = tmp_path / "lib"
    for name in ("a.png", "a.bmp", "a.tif"):
        same_pixels(root / name, 1)
    same_pixels(root / "b.png", 2)
    db = tmp_path / "i.db"
    assert invoke("find", root, "--db", db, "--processes", 1, "-q").returncode == 0
    return root, db


def break_it(db, *sql):
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys=OFF")
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_a_sound_index_passes(tmp_path):
    _, db = library(tmp_path)
    ran = invoke("check", "--db", db)
    assert ran.returncode == 0 and "OK: every invariant holds" in ran.stdout


def test_broken_invariants_are_found_and_repaired_without_touching_a_photo(tmp_path):
    root, db = library(tmp_path)
    before = inventory(root)
    break_it(db,
             "DELETE FROM tensors WHERE image_id = (SELECT min(id) FROM images)",  # a lost tensor
             "INSERT INTO pairs (search_id, image_a, image_b, mse, rotation, mirrored, found_at)"
                 " VALUES ((SELECT max(id) FROM searches), 9998, 9999, 0, 0, 0, 'x')",  # orphans
             "UPDATE group_members SET is_keeper = 0",  # groups without a keeper
             "INSERT INTO action_runs (command, pid, host, started_at, status) VALUES"  # a dead run on this machine
             f" ('delete', 2147483646, '{socket.gethostname()}', 'x', 'running')")
    ran = invoke("check", "--db", db)
    assert ran.returncode == 1
    for name in ("missing tensors", "orphans", "groups", "unsettled journal"):
        assert f"PROBLEM {name}" in ran.stdout, name
    repaired = invoke("check", "--db", db, "--repair")
    assert repaired.returncode == 0, repaired.stdout
    assert "repaired: dropped 1 orphan rows of pairs" in repaired.stdout
    assert "queued 1 images for the next scan" in repaired.stdout
    assert inventory(root) == before
    assert invoke("scan", root, "--db", db, "-q").returncode == 0  # the image queued is read again
    assert invoke("check", "--db", db).returncode == 0
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM images").fetchone() == (4,)


def test_a_corrupt_file_is_refused_at_open(tmp_path):
    _, db = library(tmp_path)
    data = bytearray(db.read_bytes())
    data[100:4000] = b"\x00" * 3900
    db.write_bytes(bytes(data))
    ran = invoke("check", "--db", db)
    assert ran.returncode == 1 and ("not a usable imgindex database" in ran.stderr or "PROBLEM integrity" in ran.stdout)


def _open_as_is(db: str) -> str:
    from imgindex import Index
    from imgindex.errors import IndexOpenError

    try:
        Index(db).close()
        return "opened"
    except IndexOpenError as exc:
        return str(exc)


def test_a_read_only_index_or_folder_is_a_clear_message_at_open(tmp_path):
    root, db = library(tmp_path)
    inner = Path(tempfile.mkdtemp(prefix="imgindex-ro-"))  # tmp_path is root's own: nobody could not reach it
    try:
        (inner / "i.db").write_bytes(db.read_bytes())
        os.chmod(inner / "i.db", 0o444)
        os.chmod(inner, 0o777)
        assert "is read-only" in as_nobody(_open_as_is, str(inner / "i.db"))
        os.chmod(inner / "i.db", 0o666)
        os.chmod(inner, 0o555)
        assert "The folder" in as_nobody(_open_as_is, str(inner / "i.db"))
        os.chmod(inner, 0o777)
        assert as_nobody(_open_as_is, str(inner / "i.db")) == "opened"  # and once writable, it opens
    finally:
        os.chmod(inner, 0o755)
        shutil.rmtree(inner)


def test_a_folder_that_vanishes_during_a_scan_keeps_its_rows(tmp_path):
    from imgindex import Index

    root = tmp_path / "drive" / "photos"
    for k in range(40):
        (root / f"d{k % 4}").mkdir(parents=True, exist_ok=True)
        photo_like(k, (48, 36)).save(root / f"d{k % 4}" / f"p{k:02d}.png")
    with Index(tmp_path / "i.db") as index:
        assert index.scan(root, processes=1).added == 40
        for k in range(40):  # changed since: the next scan has work, and reports progress while it works
            photo_like(100 + k, (48, 36)).save(root / f"d{k % 4}" / f"p{k:02d}.png")
        unplugged = tmp_path / "unplugged"

        def unplug(progress):
            if root.exists() and progress.seen >= 5:
                root.parent.rename(unplugged)  # the drive goes away in the middle of the walk

        report = index.scan(root, processes=1, progress=unplug)
        assert not root.exists()
        assert report.removed == 0 and index.count() == 40  # nothing dropped as 'removed'
        assert any(f.error_class == "folder_vanished" for f in report.unlisted_folders)
        unplugged.rename(root.parent)
        again = index.scan(root, processes=1)
        assert index.count() == 40 and again.removed == 0


def test_an_incomplete_point_index_is_found_and_made_again(tmp_path):
    root, db = library(tmp_path)
    from imgindex import Index
    from imgindex.compare import points

    with Index(db) as index:
        points.ensure(index.db, index.px_size)  # as the first search of more than 5,000 images does
        assert index.db.execute("SELECT count(*) FROM search_points").fetchone()[0] == 4
    break_it(db, "DELETE FROM search_points WHERE image_id = (SELECT min(image_id) FROM search_points)")
    ran = invoke("check", "--db", db)
    assert ran.returncode == 1 and "PROBLEM point index" in ran.stdout
    repaired = invoke("check", "--db", db, "--repair")
    assert repaired.returncode == 0 and "dropped the point index" in repaired.stdout, repaired.stdout
    with Index(db) as index:
        assert index.db.execute("SELECT count(*) FROM search_space").fetchone()[0] == 0
        points.ensure(index.db, index.px_size)
        assert index.db.execute("SELECT count(*) FROM search_points").fetchone()[0] == 4
    assert invoke("check", "--db", db).returncode == 0
