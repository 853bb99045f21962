"""move-to, delete and undo: keepers never touched, nothing overwritten, every file accounted for.

Every test takes an inventory of content hashes over the photo folders, DEST and the trash
before and after: a move or a trash may change where bytes live, never whether they exist.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imgindex
from imgindex import Index
from imgindex.errors import ImgIndexError

from helpers import contents, invoke, sha, write_image

CLI = [sys.executable, "-m", "imgindex.cli"]


@pytest.fixture
def library(tmp_path) -> Path:
    """Three copies of one photo under the same name in three folders, a smaller copy of another, one loner."""
    root = tmp_path / "photos"
    write_image(root / "2019" / "IMG_0001.jpg", seed=1, quality=90)
    for folder in ("backup", "phone"):
        (root / folder).mkdir(parents=True)
        shutil.copy2(root / "2019" / "IMG_0001.jpg", root / folder / "IMG_0001.jpg")
    write_image(root / "2019" / "IMG_0002.png", seed=2, size=(120, 90))
    write_image(root / "phone" / "IMG_0002.png", seed=2, size=(60, 45))
    write_image(root / "2019" / "loner.jpg", seed=3)
    return root


def searched(tmp_path, root, similarity="duplicates", same_dim=True) -> Index:
    index = Index(tmp_path / "index.db")
    index.scan([root], processes=1)
    index.search(similarity=similarity, same_dim=same_dim, processes=1)
    return index


def journal(index: Index) -> list[dict]:
    cursor = index.db.execute("SELECT * FROM actions ORDER BY id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def test_move_to_keeps_folders_never_overwrites_and_spares_keepers(tmp_path, library):
    dest = tmp_path / "dups"
    (dest / "backup").mkdir(parents=True)
    (dest / "backup" / "IMG_0001.jpg").write_bytes(b"a file the user already had there")
    before = contents(library, dest)
    keeper_hash = sha(library / "2019" / "IMG_0001.jpg")
    with searched(tmp_path, library) as index:
        assert sorted(index.lower_quality()) == [str(library / "backup" / "IMG_0001.jpg"),
                                                 str(library / "phone" / "IMG_0001.jpg")]
        report = index.move_to(dest)
        assert (report.done, report.skipped, report.failed) == (2, 0, 0)
        # same names from different folders land on different paths; the old file is untouched
        assert (dest / "backup" / "IMG_0001 (1).jpg").exists()
        assert (dest / "phone" / "IMG_0001.jpg").exists()
        assert (dest / "backup" / "IMG_0001.jpg").read_bytes() == b"a file the user already had there"
        assert sha(library / "2019" / "IMG_0001.jpg") == keeper_hash
        assert contents(library, dest) == before
        # DEST is outside the scanned root: the moved images leave the index and the groups
        assert index.db.execute("SELECT count(*) FROM images WHERE path LIKE ?", [f"{dest}%"]).fetchone()[0] == 0
        assert index.lower_quality() == []
        assert index.db.execute("SELECT count(*) FROM match_groups").fetchone()[0] == 0
        rows = journal(index)
        assert [r["outcome"] for r in rows] == ["done", "done"]
        assert all(r["content_hash"] == keeper_hash and r["planned_at"] <= r["done_at"] for r in rows)
        assert {r["destination"] for r in rows} == {str(dest / "backup" / "IMG_0001 (1).jpg"),
                                                    str(dest / "phone" / "IMG_0001.jpg")}
        assert index.db.execute("SELECT status, done FROM action_runs").fetchall() == [("completed", 2)]


def test_a_file_where_a_destination_folder_must_be_fails_that_move_with_a_short_reason(tmp_path, library):
    dest = tmp_path / "dups"
    dest.mkdir()
    (dest / "phone").write_bytes(b"a file named like the folder a move needs")
    before = contents(library, dest)
    with searched(tmp_path, library) as index:
        report = index.move_to(dest)
        assert (report.done, report.failed) == (1, 1)
        (failed,) = [o for o in report.outcomes if o.outcome == "failed"]
        assert failed.source == str(library / "phone" / "IMG_0001.jpg")
        assert "a file is where this folder must be" in failed.message and len(failed.message) < 300
        (row,) = [r for r in journal(index) if r["source"] == failed.source]
        assert row["destination"] == str(dest / "phone" / "IMG_0001.jpg")  # no spree of " (1)" renames
    assert contents(library, dest) == before
    assert (dest / "phone").read_bytes() == b"a file named like the folder a move needs"


def test_move_inside_the_root_keeps_images_indexed_under_their_new_paths(tmp_path, library):
    dest = library / "_duplicates"
    with searched(tmp_path, library) as index:
        ids = dict(index.db.execute("SELECT path, id FROM images").fetchall())
        index.move_to(dest)
        moved = dict(index.db.execute("SELECT path, id FROM images WHERE folder LIKE ?", [f"{dest}%"]).fetchall())
        assert moved == {str(dest / "backup" / "IMG_0001.jpg"): ids[str(library / "backup" / "IMG_0001.jpg")],
                         str(dest / "phone" / "IMG_0001.jpg"): ids[str(library / "phone" / "IMG_0001.jpg")]}
        # the index already knows: a scan finds nothing new, and a second move-to leaves DEST alone
        scan = index.scan([library], processes=1)
        assert (scan.added, scan.moved, scan.removed) == (0, 0, 0)
        index.search(processes=1)
        plan = index.plan_move_to(dest)
        assert plan.actions == ()
        assert {s.reason for s in plan.skipped} == {f"already inside {dest}"}


def test_several_roots_get_a_folder_each_under_dest(tmp_path):
    roots = [tmp_path / "a" / "photos", tmp_path / "b" / "photos", tmp_path / "c" / "camera"]
    for root in roots:
        write_image(root / "x" / "IMG.jpg", seed=5)  # the same bytes: the keeper is the first path
    with Index(tmp_path / "index.db") as index:
        index.scan(roots, processes=1)
        index.search(processes=1)
        plan = index.plan_move_to(tmp_path / "dest")
        assert sorted(a.destination for a in plan.actions) == [str(tmp_path / "dest" / "camera" / "x" / "IMG.jpg"),
                                                                str(tmp_path / "dest" / "photos" / "x" / "IMG.jpg")]
        assert all(a.keeper == str(roots[0] / "x" / "IMG.jpg") for a in plan.actions)


def test_a_file_changed_since_indexing_is_skipped_even_with_same_size_and_mtime(tmp_path, library):
    target = library / "phone" / "IMG_0001.jpg"
    with searched(tmp_path, library) as index:
        st = target.stat()
        data = bytearray(target.read_bytes())
        data[-3] ^= 0xFF  # same size, different bytes, and the old mtime put back
        target.write_bytes(bytes(data))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        report = index.move_to(tmp_path / "dest")
        outcome = {o.source: o for o in report.outcomes}
        assert outcome[str(target)].outcome == "skipped"
        assert "content" in outcome[str(target)].message
        assert target.read_bytes() == bytes(data)
        assert outcome[str(library / "backup" / "IMG_0001.jpg")].outcome == "done"


def test_a_group_whose_keeper_is_gone_is_left_alone(tmp_path, library):
    with searched(tmp_path, library) as index:
        keeper = library / "2019" / "IMG_0001.jpg"
        keeper.rename(tmp_path / "elsewhere.jpg")  # the user moved the keeper away after the search
        report = index.delete(permanent=True)
        assert report.done == 0
        assert {o.outcome for o in report.outcomes} == {"skipped"}
        assert all("keeper" in o.message for o in report.outcomes)
        assert (library / "backup" / "IMG_0001.jpg").exists() and (library / "phone" / "IMG_0001.jpg").exists()


def test_a_hard_link_to_the_keeper_is_not_deleted(tmp_path):
    root = tmp_path / "photos"
    write_image(root / "a.jpg", seed=1)
    os.link(root / "a.jpg", root / "b.jpg")
    with searched(tmp_path, root) as index:
        assert index.lower_quality() == [str(root / "b.jpg")]
        report = index.delete(permanent=True)
        assert report.outcomes[0].outcome == "skipped"
        assert "same file as its keeper" in report.outcomes[0].message
        assert (root / "b.jpg").exists()


def _info_of(trashed: str) -> Path:
    return Path(trashed).parent.parent / "info" / (os.path.basename(trashed) + ".trashinfo")


def test_delete_goes_to_the_trash_and_undo_brings_it_back(tmp_path, library):
    before_library = contents(library)
    hashes = {p: sha(p) for p in (library / "backup" / "IMG_0001.jpg", library / "phone" / "IMG_0001.jpg")}
    with searched(tmp_path, library) as index:
        report = index.delete()
        assert report.done == 2
        for path in hashes:
            assert not path.exists()
        trashed = [o.destination for o in report.outcomes]
        assert all(t and "Trash" in t and sha(t) in hashes.values() for t in trashed)
        assert all(_info_of(t).read_text().startswith("[Trash Info]") for t in trashed)
        assert index.db.execute("SELECT count(*) FROM images WHERE path IN (?, ?)",
                                [str(p) for p in hashes]).fetchone()[0] == 0
        undone = index.undo()
        assert undone.done == 2 and undone.reindexed == 2
        assert {p: sha(p) for p in hashes} == hashes
        assert contents(library) == before_library
        assert not any(os.path.exists(t) for t in trashed)
        assert not any(_info_of(t).exists() for t in trashed)
        assert index.db.execute("SELECT count(*) FROM images WHERE path IN (?, ?)",
                                [str(p) for p in hashes]).fetchone()[0] == 2
        assert [r["outcome"] for r in journal(index)] == ["undone", "undone", "done", "done"]


def test_permanent_delete_cannot_be_undone_and_says_so(tmp_path, library):
    with searched(tmp_path, library) as index:
        index.delete(permanent=True)
        assert not (library / "phone" / "IMG_0001.jpg").exists()
        assert (library / "2019" / "IMG_0001.jpg").exists()
        plan = index.plan_undo()
        assert plan.actions == ()
        assert all("cannot be brought back" in s.reason for s in plan.skipped)


def test_undo_never_overwrites_what_now_sits_at_the_original_path(tmp_path, library):
    dest = tmp_path / "dest"
    with searched(tmp_path, library) as index:
        index.move_to(dest)
        newcomer = library / "phone" / "IMG_0001.jpg"
        newcomer.write_bytes(b"a new file the user put here since")
        report = index.undo()
        outcome = {o.source: o for o in report.outcomes}
        assert outcome[str(dest / "phone" / "IMG_0001.jpg")].outcome == "skipped"
        assert newcomer.read_bytes() == b"a new file the user put here since"
        assert (dest / "phone" / "IMG_0001.jpg").exists()
        assert (library / "backup" / "IMG_0001.jpg").exists()  # the other one did go back


def test_undo_one_action_by_id(tmp_path, library):
    dest = tmp_path / "dest"
    with searched(tmp_path, library) as index:
        index.move_to(dest)
        first = journal(index)[0]
        report = index.undo(action_id=first["id"])
        assert report.done == 1
        assert os.path.exists(first["source"]) and not os.path.exists(first["destination"])
        assert journal(index)[1]["outcome"] == "done"  # the other move stands
        with pytest.raises(ImgIndexError, match="nothing to undo"):
            index.plan_undo(action_id=first["id"])


def test_dry_run_changes_nothing_and_lists_every_file(tmp_path, library):
    dest = tmp_path / "dest"
    with searched(tmp_path, library):
        pass
    before = contents(library)
    out = invoke("move-to", dest, "--db", tmp_path / "index.db", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "dry run" in out.stdout and str(library / "phone" / "IMG_0001.jpg") in out.stdout
    assert str(dest / "phone" / "IMG_0001.jpg") in out.stdout
    assert not dest.exists() and contents(library) == before
    out = invoke("delete", "--db", tmp_path / "index.db", "--dry-run", "--permanent")
    assert out.returncode == 0 and "PERMANENTLY" in out.stdout
    assert contents(library) == before
    with sqlite3.connect(tmp_path / "index.db") as conn:
        assert conn.execute("SELECT count(*) FROM actions").fetchone()[0] == 0


def test_without_a_terminal_the_cli_asks_for_yes(tmp_path, library):
    with searched(tmp_path, library):
        pass
    before = contents(library)
    out = invoke("delete", "--db", tmp_path / "index.db")  # CliRunner's stdin is no terminal
    assert out.returncode == 1
    assert "--yes" in out.stderr and "Traceback" not in out.stderr
    assert contents(library) == before


def _run_in_terminal(args, answer: str) -> tuple[int, str]:
    """Run the CLI on a real pseudo-terminal and type ``answer`` at its question (a process of its
    own: only a real terminal makes it ask)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*CLI, *map(str, args)], stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(leader, answer.encode() + b"\n")
                answered = True
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    return proc.returncode, output.decode(errors="replace")


def test_on_a_terminal_the_cli_asks_and_respects_the_answer(tmp_path, library):
    with searched(tmp_path, library):
        pass
    dest = tmp_path / "dest"
    code, output = _run_in_terminal(["move-to", dest, "--db", tmp_path / "index.db"], "n")
    assert "Move 2 lower-quality files" in output and code == 1
    assert not dest.exists()
    code, output = _run_in_terminal(["move-to", dest, "--db", tmp_path / "index.db"], "y")
    assert code == 0, output
    assert (dest / "phone" / "IMG_0001.jpg").exists() and "Undo with: imgindex undo" in output


def test_cli_round_trip_move_undo_delete_undo(tmp_path, library):
    db = tmp_path / "index.db"
    with searched(tmp_path, library):
        pass
    before = contents(library)
    out = invoke("move-to", tmp_path / "dest", "--db", db, "--yes")
    assert out.returncode == 0 and "Moved 2 files" in out.stdout, out.stderr
    out = invoke("undo", "--db", db, "--yes")
    assert out.returncode == 0 and "Put back 2 files" in out.stdout, out.stderr
    assert contents(library) == before
    assert invoke("search", "--db", db, "-q").returncode == 0
    out = invoke("delete", "--db", db, "--yes")
    assert out.returncode == 0 and "Deleted 2 files" in out.stdout, out.stderr
    out = invoke("undo", "--db", db, "--yes")
    assert out.returncode == 0 and "Put back 2 files" in out.stdout, out.stderr
    assert contents(library) == before
    out = invoke("status", "--db", db)
    assert "Last action: run 4 (undo) completed" in out.stdout and "2 done" in out.stdout
    out = invoke("undo", "--db", db, "--run-id", 99)
    assert out.returncode == 1 and "no run 99" in out.stderr


def _device(path) -> int:
    return os.stat(path).st_dev


def test_a_move_to_another_device_is_copied_verified_then_removed(tmp_path, library):
    other = Path("/dev/shm")
    if not other.is_dir() or _device(other) == _device(tmp_path):
        pytest.skip("LOUD: no second filesystem (/dev/shm) here, so the cross-device copy path is untested")
    dest = Path(os.path.join(other, f"imgindex-test-{os.getpid()}-{time.time_ns()}"))
    try:
        source = library / "phone" / "IMG_0001.jpg"
        mtime = source.stat().st_mtime_ns
        before = contents(library)
        with searched(tmp_path, library) as index:
            report = index.move_to(dest)
        assert report.done == 2 and not source.exists()
        assert (dest / "phone" / "IMG_0001.jpg").stat().st_mtime_ns == mtime
        assert contents(library, dest) == before
        assert not [n for _, _, names in os.walk(dest) for n in names if n.startswith(".imgindex-partial")]
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return result.returncode == 0


@pytest.fixture
def tiny_fs(tmp_path):
    where = tmp_path / "tiny"
    if not _mount_tmpfs(where, "size=32k"):
        pytest.skip("LOUD: cannot mount a tiny tmpfs (needs root and mount rights), so a full disk is untested")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_destination_fails_cleanly_and_loses_nothing(tmp_path, tiny_fs):
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    noise = np.random.default_rng(7).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "a" / "big.png")  # 270 KB: cannot fit in 32 KB
    (root / "b").mkdir()
    shutil.copy2(root / "a" / "big.png", root / "b" / "big.png")
    before = contents(root)
    with searched(tmp_path, root):
        pass
    out = invoke("move-to", tiny_fs, "--db", tmp_path / "index.db", "--yes")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "No space left on device" in out.stderr
    assert contents(root) == before
    assert [n for _, _, names in os.walk(tiny_fs) for n in names] == []  # no partial copy left behind
    with sqlite3.connect(tmp_path / "index.db") as conn:
        assert conn.execute("SELECT outcome FROM actions").fetchall() == [("failed",)]
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 2


def test_a_read_only_destination_fails_cleanly_and_loses_nothing(tmp_path, library):
    dest = tmp_path / "readonly"
    if os.geteuid() == 0:
        if not _mount_tmpfs(dest, "ro,size=1m"):
            pytest.skip("LOUD: running as root without mount rights: cannot make a read-only folder")
    else:
        dest.mkdir()
        dest.chmod(0o555)
    try:
        before = contents(library)
        with searched(tmp_path, library):
            pass
        out = invoke("move-to", dest, "--db", tmp_path / "index.db", "--yes")
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert "Read-only file system" in out.stderr or "Permission denied" in out.stderr
        assert contents(library) == before
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(dest)], check=False)


def _move_150_then_signal(tmp_path, sig: int) -> tuple[Path, Path, Counter, int, str]:
    """A move-to of 150 copies, sent ``sig`` once 20 files are done: (root, dest, contents before,
    exit status, stderr)."""
    root = tmp_path / "photos"
    write_image(root / "keep" / "0.png", seed=11, size=(300, 200))
    for i in range(150):
        (root / f"copy{i:03d}").mkdir(parents=True)
        shutil.copy2(root / "keep" / "0.png", root / f"copy{i:03d}" / "0.png")
    before = contents(root)
    with searched(tmp_path, root):
        pass
    dest = tmp_path / "dest"
    proc = subprocess.Popen([*CLI, "move-to", str(dest), "--db", str(tmp_path / "index.db"), "--yes"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with sqlite3.connect(tmp_path / "index.db", timeout=30) as conn:
            if conn.execute("SELECT count(*) FROM actions WHERE outcome = 'done'").fetchone()[0] >= 20:
                break
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return root, dest, before, proc.returncode, err


@pytest.mark.slow
def test_a_run_killed_mid_way_is_settled_from_the_journal(tmp_path):
    """SIGKILL during a move-to, then any action command: every file exists exactly once, the
    journal has no 'planned' rows, and it agrees with the disk."""
    root, dest, before, _, _ = _move_150_then_signal(tmp_path, signal.SIGKILL)
    after = contents(root, dest)
    assert all(after[h] >= n for h, n in before.items())  # nothing lost, even before settling
    with Index(tmp_path / "index.db") as index:
        index.plan_undo()  # any action command settles the dead run first
        rows = journal(index)
        assert rows and not [r for r in rows if r["outcome"] == "planned"]
        for r in rows:
            moved = r["outcome"] == "done"
            assert os.path.exists(r["source"]) != moved
            assert os.path.exists(r["destination"]) == moved
        assert index.db.execute("SELECT status FROM action_runs").fetchone()[0] == "interrupted"
        undone = index.undo()
        assert undone.failed == 0
    assert contents(root) == before


def test_ctrl_c_mid_run_settles_the_file_in_hand_and_stops(tmp_path):
    """SIGINT (and SIGTERM, which the CLI treats alike): exit 130, no 'planned' row left behind."""
    root, dest, before, status, err = _move_150_then_signal(tmp_path, signal.SIGINT)
    db = tmp_path / "index.db"
    assert status == 130 and "Traceback" not in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM action_runs").fetchone()[0] == "interrupted"
        assert conn.execute("SELECT count(*) FROM actions WHERE outcome = 'planned'").fetchone()[0] == 0
        done = conn.execute("SELECT source, destination FROM actions WHERE outcome = 'done'").fetchall()
    assert 20 <= len(done) < 150
    assert all(not os.path.exists(s) and os.path.exists(d) for s, d in done)
    assert contents(root, dest) == before


def test_a_move_caught_between_link_and_unlink_is_finished(tmp_path, library):
    """The one moment both names exist: recovery removes the source only because DEST holds the same file."""
    dest = tmp_path / "dest"
    with searched(tmp_path, library) as index:
        plan = index.plan_move_to(dest)
        action = plan.actions[0]
        # a run whose process is gone (no pid can be this high), caught with both names on disk
        index.db.execute("INSERT INTO action_runs (command, pid, host, started_at, status) VALUES"
                         " ('move-to', 999999999, ?, 'x', 'running')", [socket.gethostname()])
        index.db.execute("INSERT INTO actions (run_id, kind, image_id, source, destination, content_hash, size,"
                         " keeper, planned_at, outcome) VALUES (1, 'move', ?, ?, ?, ?, ?, ?, 'x', 'planned')",
                         [action.image_id, action.source, action.destination, action.content_hash, action.size,
                          action.keeper])
        os.makedirs(os.path.dirname(action.destination))
        os.link(action.source, action.destination)
        settled = index.recover()
        assert [o.outcome for o in settled] == ["done"]
        assert not os.path.exists(action.source) and sha(action.destination) == action.content_hash
        assert index.db.execute("SELECT count(*) FROM images WHERE path = ?", [action.source]).fetchone()[0] == 0


def test_difpy_api_move_to_and_delete(tmp_path, library, monkeypatch):
    dif = imgindex.build(str(library), show_progress=False, db=tmp_path / "dif.db")
    se = imgindex.search(dif, show_progress=False)
    assert len(se.lower_quality) == 2
    report = se.move_to(tmp_path / "moved")
    assert report.done == 2
    assert sorted(se.lower_quality) == sorted(str(p) for p in (tmp_path / "moved").rglob("*.jpg"))
    dif2 = imgindex.build(str(tmp_path / "moved"), str(library / "2019"), show_progress=False)
    se2 = imgindex.search(dif2, show_progress=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert se2.delete() is None  # asked, and the answer was no
    assert len(list((tmp_path / "moved").rglob("*.jpg"))) == 2
    keeper = next(iter(se2.result))
    report = se2.delete(silent_del=True)
    assert report.done == 2 and se2.lower_quality == []
    copies = [p for p in [*(tmp_path / "moved").rglob("*.jpg"), library / "2019" / "IMG_0001.jpg"] if p.exists()]
    assert copies == [Path(keeper)]
    dif.close()
    dif2.close()


@pytest.mark.parametrize("command", [["move-to", "DEST"], ["delete"], ["undo"]])
def test_actions_never_create_a_missing_database(tmp_path, command):
    """(Corrupt and future databases: tests/test_hostile.py, for every command.)"""
    args = [str(tmp_path / "dest") if a == "DEST" else a for a in command]
    out = invoke(*args, "--db", tmp_path / "missing.db", "--yes")
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "dest").exists()


def test_no_search_yet_is_a_clear_error(tmp_path, library):
    with Index(tmp_path / "index.db") as index:
        index.scan([library], processes=1)
    out = invoke("delete", "--db", tmp_path / "index.db", "--yes")
    assert out.returncode == 1 and "imgindex search" in out.stderr
    out = invoke("move-to", library / "2019" / "loner.jpg", "--db", tmp_path / "index.db", "--yes")
    assert out.returncode in (1, 2) and "Traceback" not in out.stderr
