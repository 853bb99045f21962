"""The watcher, for real: a subprocess running `imgindex watch`, a real observer, real files.

No fixed sleeps for results: every check polls the database until a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from imgindex.scan.decode import decode_path

from helpers import invoke, write_image

SETTLE = 0.4
DEADLINE = 30.0


def query(db: Path, sql: str, args=()):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def wait_for(db: Path, sql: str, predicate, args=(), deadline: float = DEADLINE, proc=None):
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the watcher exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            last = query(db, sql, args)
            if predicate(last):
                return last
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting: {sql} -> {last}")


@contextmanager
def watching(root: Path, db: Path, *extra: str, stop_signal=signal.SIGTERM):
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgindex.cli", "watch", str(root), "--db", str(db), "--settle", str(SETTLE),
         "--processes", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(db, "SELECT pid, batches FROM watcher", lambda r: r and r[0][0] == proc.pid and r[0][1] >= 1, proc=proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(stop_signal)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise


def paths(db: Path) -> dict[str, int]:
    return {p: i for p, i in query(db, "SELECT path, id FROM images")}


@pytest.mark.slow
def test_create_duplicate_modify_rename_delete(tmp_path):
    root, db = tmp_path / "photos", tmp_path / "w.db"
    write_image(root / "before.png", seed=1)  # there before the watcher starts: the catch-up finds it
    with watching(root, db) as proc:
        assert str(root / "before.png") in paths(db)
        write_image(root / "new.png", seed=2)
        wait_for(db, "SELECT count(*) FROM images", lambda r: r[0][0] == 2, proc=proc)
        shutil.copy(root / "new.png", root / "dropped-in copy.png")
        pairs = wait_for(db, "SELECT path_a, path_b FROM match_pairs", lambda r: len(r) == 1, proc=proc)
        assert {os.path.basename(p) for p in pairs[0]} == {"new.png", "dropped-in copy.png"}
        old_id = paths(db)[str(root / "before.png")]
        write_image(root / "before.png", seed=3)  # modified: read again, new id
        wait_for(db, "SELECT id FROM images WHERE path = ?", lambda r: r and r[0][0] != old_id,
                 (str(root / "before.png"),), proc=proc)
        new_id = paths(db)[str(root / "new.png")]
        os.rename(root / "new.png", root / "renamed.png")
        wait_for(db, "SELECT id FROM images WHERE path = ?", lambda r: r == [(new_id,)], (str(root / "renamed.png"),),
                 proc=proc)
        (root / "dropped-in copy.png").unlink()
        wait_for(db, "SELECT count(*) FROM images", lambda r: r[0][0] == 2, proc=proc)
        wait_for(db, "SELECT count(*) FROM match_pairs", lambda r: r[0][0] == 0, proc=proc)
    assert proc.returncode == 0
    out = proc.stderr.read()
    assert "stopped cleanly" in out and "Traceback" not in out
    assert query(db, "SELECT count(*) FROM watcher") == [(0,)]


def test_moved_folder_keeps_rows_and_matches(tmp_path):
    root, db = tmp_path / "photos", tmp_path / "w.db"
    for i in range(3):
        write_image(root / "trip" / f"p{i}.png", seed=i)
    shutil.copy(root / "trip" / "p0.png", root / "p0 copy.png")
    with watching(root, db) as proc:
        wait_for(db, "SELECT count(*) FROM match_pairs", lambda r: r[0][0] == 1, proc=proc)
        before = paths(db)
        os.rename(root / "trip", root / "trip-2026")
        wait_for(db, "SELECT count(*) FROM images WHERE folder = ?", lambda r: r[0][0] == 3,
                 (str(root / "trip-2026"),), proc=proc)
        after = paths(db)
        for i in range(3):
            assert after[str(root / "trip-2026" / f"p{i}.png")] == before[str(root / "trip" / f"p{i}.png")]
        assert query(db, "SELECT count(*) FROM match_pairs") == [(1,)]
        assert query(db, "SELECT sum(decoded) FROM scans") == [(4,)]  # nothing decoded twice


@pytest.mark.slow
def test_slow_copy_is_read_once_complete(tmp_path):
    root, db = tmp_path / "photos", tmp_path / "w.db"
    root.mkdir()
    source = write_image(tmp_path / "source.png", seed=5, size=(400, 300))
    data = source.read_bytes()
    with watching(root, db) as proc:
        target = root / "slow.png"
        steps = 12
        with open(target, "wb") as out:  # grows over ~3 s, in steps shorter than the settle time
            for k in range(steps):
                out.write(data[k * len(data) // steps : (k + 1) * len(data) // steps])
                out.flush()
                time.sleep(3.0 / steps)
                assert query(db, "SELECT count(*) FROM scan_errors") == [(0,)]
        wait_for(db, "SELECT count(*) FROM images", lambda r: r[0][0] == 1, proc=proc)
        tensor = query(db, "SELECT tensor FROM vectors")[0][0]
        assert tensor == decode_path(str(source), 50).tensor
        assert query(db, "SELECT count(*) FROM scan_errors") == [(0,)]
        assert query(db, "SELECT sum(decoded) FROM scans") == [(1,)]


@pytest.mark.slow
def test_burst_of_500_files_is_batched_while_readers_read(tmp_path):
    root, db = tmp_path / "photos", tmp_path / "w.db"
    root.mkdir()
    staging = tmp_path / "staging"
    for i in range(500):
        write_image(staging / f"b{i:03d}.png", seed=i % 250, size=(32, 24))  # 250 pictures, twice each
    with watching(root, db):
        for path in sorted(staging.iterdir()):
            shutil.copy(path, root / path.name)
        reads = 0
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:  # a reader polls throughout; it must never be locked out
            n = query(db, "SELECT count(*) FROM images")[0][0]
            reads += 1
            if n == 500 and query(db, "SELECT count(*) FROM match_pairs")[0][0] == 250:
                break
            time.sleep(0.02)
        assert query(db, "SELECT count(*) FROM images") == [(500,)]
        assert query(db, "SELECT count(*) FROM match_pairs") == [(250,)]
        batches = query(db, "SELECT batches FROM watcher")[0][0]
        assert 2 <= batches <= 30, batches  # a few batches, not one per file
        assert reads > 5
        report = invoke("search", "--db", db, "--format", "json")
        assert report.returncode == 0, report.stderr
        groups = json.loads(report.stdout)
        assert len(groups) == 250 and all(len(matches) == 1 for matches in groups.values())


@pytest.mark.slow
def test_second_watcher_is_refused_and_sigkill_is_repaired(tmp_path):
    root, db = tmp_path / "photos", tmp_path / "w.db"
    write_image(root / "a.png", seed=1)
    with watching(root, db) as first:
        # a process of its own: were it not refused, an in-process watcher would never return
        second = subprocess.run([sys.executable, "-m", "imgindex.cli", "watch", str(root), "--db", str(db)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "Another watcher" in second.stderr and str(first.pid) in second.stderr
        assert "Traceback" not in second.stderr
        status = invoke("status", "--db", db).stdout
        assert f"Watcher: running, pid {first.pid}" in status
        for i in range(40):  # a batch in progress...
            write_image(root / "more" / f"m{i}.png", seed=100 + i, size=(300, 200))
        wait_for(db, "SELECT count(*) FROM images", lambda r: r[0][0] > 1, proc=first)
        first.send_signal(signal.SIGKILL)  # ...killed without warning
        first.wait()
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    status = invoke("status", "--db", db).stdout
    assert "stopped without cleaning up" in status
    with watching(root, db) as again:  # the stale lock is replaced, the catch-up finishes the job
        wait_for(db, "SELECT count(*) FROM images", lambda r: r[0][0] == 41, proc=again)
        orphans = query(db, "SELECT count(*) FROM images LEFT JOIN tensors ON id = image_id WHERE image_id IS NULL")
        assert orphans == [(0,)]
    assert again.returncode == 0


QUEUE_LIMIT = Path("/proc/sys/fs/inotify/max_queued_events")


def _can_shrink_inotify_queue() -> bool:
    return sys.platform == "linux" and os.geteuid() == 0 and os.access(QUEUE_LIMIT, os.W_OK)


@pytest.mark.skipif(not _can_shrink_inotify_queue(), reason="needs root to shrink the kernel's inotify queue")
def test_events_dropped_by_the_kernel_are_caught_up(tmp_path):
    """A paused watcher and a 64-event kernel queue: 200 new files overflow it, for real."""
    root, db = tmp_path / "photos", tmp_path / "w.db"
    root.mkdir()
    staging = tmp_path / "staging"
    for i in range(200):
        write_image(staging / f"o{i:03d}.png", seed=i, size=(16, 16))
    original = QUEUE_LIMIT.read_text()
    QUEUE_LIMIT.write_text("64")  # read by inotify_init, i.e. when the watcher starts
    try:
        with watching(root, db) as proc:
            QUEUE_LIMIT.write_text(original)
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                for path in sorted(staging.iterdir()):
                    shutil.copy(path, root / path.name)
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            wait_for(db, "SELECT count(*) FROM images", lambda r: r[0][0] == 200, proc=proc)
    finally:
        QUEUE_LIMIT.write_text(original)
    assert "catch-up: events were lost" in proc.stderr.read()


WATCH_LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")


@pytest.mark.slow
@pytest.mark.skipif(not (sys.platform == "linux" and os.geteuid() == 0 and os.access(WATCH_LIMIT, os.W_OK)),
                    reason="needs root to lower the kernel's inotify watch limit")
def test_no_inotify_watches_left_falls_back_to_polling(tmp_path):
    """With the watch limit at 1 the observer cannot start: the watcher says so and polls."""
    root, db = tmp_path / "photos", tmp_path / "w.db"
    for i in range(5):
        (root / f"folder{i}").mkdir(parents=True)
    original = WATCH_LIMIT.read_text()
    WATCH_LIMIT.write_text("1")
    try:
        with watching(root, db) as proc:
            WATCH_LIMIT.write_text(original)
            write_image(root / "folder3" / "late.png", seed=3)
            wait_for(db, "SELECT count(*) FROM images", lambda r: r[0][0] == 1, proc=proc)
    finally:
        WATCH_LIMIT.write_text(original)
    assert "polling every 2 s instead" in proc.stderr.read()
