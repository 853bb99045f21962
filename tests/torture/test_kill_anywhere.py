"""Kill anywhere: scan, search, find, move-to, delete and undo are SIGKILLed at a random moment
(seeded, replayable), then the index's invariants are checked, the journal settled, nothing may
be lost or duplicated, and the same command run again must end where an uninterrupted run ends.
A watcher is killed while files arrive; a scan and search afterwards must equal a fresh run. The review
server is killed while it carries out a move; the CLI then finishes it.

A short run (one trial per command) is part of the default suite; the long run is
``pytest tests/torture --torture-trials 200``. A failure names the seed that replays it:
``--torture-seed N --torture-trials 1``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from imgindex import Index

from helpers import contents, inventory, photo_like

pytestmark = pytest.mark.torture

ORIGINALS = 40


def imgindex(*args, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "imgindex.cli", *map(str, args)], capture_output=True, text=True)
    if check and run.returncode != 0:
        raise AssertionError(f"imgindex {' '.join(map(str, args))} exited {run.returncode}: {run.stderr}")
    return run


def make_library(lib: Path) -> None:
    """40 pictures, each with a byte copy, a PNG copy and a re-encoded JPEG in other folders, and broken files."""
    for k in range(ORIGINALS):
        picture = photo_like(k, (120, 90))
        for folder in ("camera", "backup", "phone", "export"):
            (lib / folder).mkdir(parents=True, exist_ok=True)
        picture.save(lib / "camera" / f"IMG_{k:03d}.png")
        shutil.copy2(lib / "camera" / f"IMG_{k:03d}.png", lib / "backup" / f"IMG_{k:03d}.png")
        picture.save(lib / "phone" / f"IMG_{k:03d}.bmp")
        picture.save(lib / "export" / f"IMG_{k:03d}.jpg", quality=95)
    (lib / "camera" / "truncated.jpg").write_bytes((lib / "export" / "IMG_000.jpg").read_bytes()[:300])
    (lib / "camera" / "not a picture.png").write_text("hello")
    (lib / "camera" / "empty.jpg").write_bytes(b"")


@dataclass
class Stage:
    """One command's trials: the state before it, what an uninterrupted run ends with."""

    name: str
    args: list
    home: Path  # holds lib/, dest/, index.db, and the snapshots
    seconds: float = 0.0  # how long an uninterrupted run takes
    expected: dict | None = None  # the file inventory an uninterrupted run ends with
    expected_pairs: set | None = None
    before_ids: dict | None = None  # the newest scans/searches/action_runs id in the snapshot

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    @property
    def db(self) -> Path:
        return self.home / "index.db"

    def places(self) -> list[Path]:
        return [self.lib, self.home / "dest", trash_files()]

    def restore(self) -> None:
        for name in ("lib", "dest"):
            shutil.rmtree(self.home / name, ignore_errors=True)
            if (self.home / f"snapshot-{name}").exists():
                shutil.copytree(self.home / f"snapshot-{name}", self.home / name, symlinks=True, copy_function=shutil.copy2)
        shutil.rmtree(trash_files().parent, ignore_errors=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db}{suffix}").unlink(missing_ok=True)
        shutil.copy2(self.home / "snapshot.db", self.db)

    def snapshot(self) -> None:
        for name in ("lib", "dest"):
            if (self.home / name).exists():
                shutil.copytree(self.home / name, self.home / f"snapshot-{name}", symlinks=True,
                                copy_function=shutil.copy2)
        with sqlite3.connect(self.db) as conn:  # one file: the WAL folded in
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy2(self.db, self.home / "snapshot.db")
        with closing(sqlite3.connect(self.db)) as conn:
            self.before_ids = {t: conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0] for t in RUNS}

    def command(self) -> list:
        return [a.format(lib=self.lib, dest=self.home / "dest", db=self.db) if isinstance(a, str) else a
                for a in self.args]


def trash_files() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "Trash" / "files"


def pairs(db: Path) -> set:
    """The pairs shown, each as a set (which is 'a' depends on the ids, and so on the order files were read)."""
    with sqlite3.connect(db) as conn:
        return {frozenset(r) for r in conn.execute("SELECT path_a, path_b FROM match_pairs")}


RUNS = ("scans", "searches", "action_runs")


def kill_point(st: Stage) -> str:
    """Which phase of the command the kill landed in, read from what the index holds before any
    repair: the run rows newer than the snapshot, and how far their writes had got."""
    point = _phase(st)
    return f"find ({point})" if st.name == "find" else point


def _phase(st: Stage) -> str:
    with closing(sqlite3.connect(st.db)) as db:
        def newest(table: str) -> tuple | None:
            return db.execute(f"SELECT id, status FROM {table} WHERE id > ? ORDER BY id DESC LIMIT 1",
                              [st.before_ids[table]]).fetchone()

        if st.name in ("scan", "find"):
            scan = newest("scans")
            if scan is None:
                return "scan: starting (no scan row yet)"
            if scan[1] == "running":
                written = db.execute("SELECT count(*) FROM images").fetchone()[0]
                return "scan: writing images" if written else "scan: walking and decoding (nothing written)"
            if st.name == "scan":
                return "scan: finished"
        if st.name in ("search", "find"):
            search = newest("searches")
            if search is None:
                return "search: starting (no search row yet)"
            if search[1] != "running":
                return "search: finished"
            if db.execute("SELECT 1 FROM group_members WHERE search_id = ?", [search[0]]).fetchone():
                return "search: groups written, run not closed"
            if db.execute("SELECT 1 FROM pairs WHERE search_id = ?", [search[0]]).fetchone():
                return "search: comparing, pairs written"
            return "search: comparing (no pair written)"
        run = newest("action_runs")
        if run is None:
            return f"{st.name}: starting (no journal yet)"
        if run[1] != "running":
            return f"{st.name}: finished"
        rows = db.execute("SELECT outcome, source FROM actions WHERE run_id = ?", [run[0]]).fetchall()
        if any(outcome == "planned" and not os.path.lexists(source) for outcome, source in rows):
            return f"{st.name}: a file moved, its journal row not yet marked"
        done = sum(outcome != "planned" for outcome, _ in rows)
        if done == 0:
            return f"{st.name}: journaled, no file touched"
        return f"{st.name}: all files done, run not closed" if done == len(rows) else f"{st.name}: part done"


def record_kill_point(config, point: str) -> None:
    """Count the phase for the terminal summary (tests/torture/conftest.py prints the table)."""
    if not hasattr(config, "torture_kill_points"):
        config.torture_kill_points = Counter()
    config.torture_kill_points[point] += 1


PREPARE = {  # what runs (uninterrupted) before the command under torture
    "scan": [], "find": [], "search": [["scan", "{lib}", "--db", "{db}", "--processes", "2", "-q"]],
    "move-to": [["find", "{lib}", "--db", "{db}", "--similarity", "similar", "-q", "-o", os.devnull]],
    "delete": [["find", "{lib}", "--db", "{db}", "--similarity", "similar", "-q", "-o", os.devnull]],
    "undo": [["find", "{lib}", "--db", "{db}", "--similarity", "similar", "-q", "-o", os.devnull],
             ["move-to", "{dest}", "--db", "{db}", "--yes", "-q"]],
}
COMMANDS = {
    "scan": ["scan", "{lib}", "--db", "{db}", "--processes", "2", "-q"],
    "search": ["search", "--db", "{db}", "--similarity", "similar", "--processes", "2", "-q", "-o", os.devnull],
    "find": ["find", "{lib}", "--db", "{db}", "--similarity", "similar", "--processes", "2", "-q", "-o", os.devnull],
    "move-to": ["move-to", "{dest}", "--db", "{db}", "--yes", "-q"],
    "delete": ["delete", "--db", "{db}", "--yes", "-q"],
    "undo": ["undo", "--db", "{db}", "--yes", "-q"],
}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("torture-template") / "lib"
    make_library(lib)
    return lib


def stage(name: str, template: Path, home: Path) -> Stage:
    """Prepare the state before the command, snapshot it, then time one uninterrupted run and keep its end."""
    st = Stage(name, COMMANDS[name], home)
    shutil.copytree(template, st.lib, copy_function=shutil.copy2)
    for args in PREPARE[name]:
        imgindex(*Stage(name, args, home).command())
    if not st.db.exists():
        Index(st.db).close()
    st.snapshot()
    started = time.monotonic()
    imgindex(*st.command())
    st.seconds = time.monotonic() - started
    st.expected = inventory(st.lib, home / "dest")
    st.expected_pairs = pairs(st.db)
    return st


@pytest.mark.parametrize("name", list(COMMANDS))
def test_killed_anywhere_nothing_is_lost_and_a_rerun_ends_as_an_uninterrupted_run(name, template, tmp_path, request):
    trials = request.config.getoption("--torture-trials")
    first = request.config.getoption("--torture-seed")
    first = 1 if first is None else first
    st = stage(name, template, tmp_path)
    for seed in range(first, first + trials):
        replay = f"replay: pytest tests/torture -k '{name}' --torture-seed {seed} --torture-trials 1"
        st.restore()
        before = contents(*st.places())
        delay = random.Random(f"{name}-{seed}").uniform(0, st.seconds)
        proc = subprocess.Popen([sys.executable, "-m", "imgindex.cli", *map(str, st.command())],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        record_kill_point(request.config, kill_point(st))
        with Index(st.db) as index:
            found = index.check()
            assert {f.name for f in found.findings} <= {"unsettled journal"}, (found.findings, replay)
            repaired = index.check(repair=True)
            assert repaired.ok, (repaired.findings, replay)
        assert contents(*st.places()) == before, f"a picture was lost or duplicated ({replay})"
        rerun = imgindex(*st.command(), check=False)
        finished_already = name == "undo" and "Nothing to undo" in rerun.stderr  # killed after its last file
        assert rerun.returncode == 0 or finished_already, (rerun.stderr, replay)
        assert inventory(st.lib, tmp_path / "dest") == st.expected, f"the re-run ended elsewhere ({replay})"
        if name in ("scan", "search", "find"):
            assert pairs(st.db) == st.expected_pairs, f"the re-run found other pairs ({replay})"
        with Index(st.db) as index:
            assert index.check().ok, replay


def test_a_watcher_killed_while_files_arrive_leaves_a_sound_index(template, tmp_path, request):
    from test_watch import watching

    trials = request.config.getoption("--torture-trials")
    first = request.config.getoption("--torture-seed")
    first = 1 if first is None else first
    arriving = sorted((template / "export").iterdir())[:30]
    for seed in range(first, first + trials):
        replay = f"replay: pytest tests/torture -k watcher --torture-seed {seed} --torture-trials 1"
        rng = random.Random(f"watch-{seed}")
        home = tmp_path / f"trial{seed}"
        lib, db = home / "lib", home / "index.db"
        shutil.copytree(template / "camera", lib / "camera", copy_function=shutil.copy2)
        with watching(lib, db) as proc:
            deadline = time.monotonic() + rng.uniform(0.2, 3.0)
            for source in arriving:
                shutil.copy2(source, lib / source.name)
                time.sleep(rng.uniform(0, 0.05))
                if time.monotonic() > deadline:
                    break
            time.sleep(rng.uniform(0, 1.0))
            proc.kill()  # SIGKILL, mid-batch or between batches
            proc.wait()
        with Index(db) as index:
            found = index.check()
            assert {f.name for f in found.findings} <= {"unsettled journal"}, (found.findings, replay)
        assert not imgindex("scan", lib, "--db", db, "-q").returncode
        assert not imgindex("search", "--db", db, "-q", "-o", os.devnull).returncode
        fresh = home / "fresh.db"
        assert not imgindex("find", lib, "--db", fresh, "-q", "-o", os.devnull).returncode
        assert pairs(db) == pairs(fresh), f"the index after the kill differs from a fresh run ({replay})"
        with Index(db) as index:
            assert index.check().ok, replay


def test_the_review_server_killed_mid_action_loses_nothing(template, tmp_path, request):
    from serve_helpers import serving

    trials = request.config.getoption("--torture-trials")
    first = request.config.getoption("--torture-seed")
    first = 1 if first is None else first
    st = stage("move-to", template, tmp_path / "stage")  # the same state as the move-to trials, and its end
    for seed in range(first, first + trials):
        replay = f"replay: pytest tests/torture -k review_server --torture-seed {seed} --torture-trials 1"
        st.restore()
        before = contents(*st.places())
        with serving(st.db, "--move-to", st.home / "dest") as server:
            csrf = server.csrf()
            _, page = server.json("/api/groups?per_page=200")
            _, plan = server.json("/api/plan", {"command": "move", "groups": [g["group_id"] for g in page["groups"]],
                                                "version": page["version"]}, csrf=csrf)
            server.json("/api/apply", {"plan_id": plan["plan_id"]}, csrf=csrf)
            time.sleep(random.Random(f"serve-{seed}").uniform(0, st.seconds))
            server.proc.kill()  # SIGKILL, in the middle of the move or after it
            server.proc.wait()
        record_kill_point(request.config, "review server " + kill_point(st))
        with Index(st.db) as index:
            assert {f.name for f in index.check().findings} <= {"unsettled journal"}, replay
            assert index.check(repair=True).ok, replay
        assert contents(*st.places()) == before, f"a picture was lost or duplicated ({replay})"
        rerun = imgindex(*st.command(), check=False)  # the CLI's move-to finishes what the page started
        assert rerun.returncode == 0, (rerun.stderr, replay)
        assert inventory(st.lib, st.home / "dest") == st.expected, f"the re-run ended elsewhere ({replay})"
