"""Everything at once on one index: a watcher over a tree where files are added, changed, renamed and
removed; a loop of manual scans and searches; readers running the README's queries; the review
server's pages and a reviewer deciding through it (pins, marks, 'not duplicates'). Nothing may fail with "database is locked" or a traceback, readers only ever see
complete searches, and the end state equals a fresh full run on the same files.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from serve_helpers import serving
from test_watch import watching

from helpers import photo_like

pytestmark = pytest.mark.torture

SECONDS = 12  # the short run; --torture-trials N runs N times longer
EXAMPLES = Path(__file__).parent.parent.parent / "examples" / "sql"


def imgindex(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imgindex.cli", *map(str, args)], capture_output=True, text=True)


def fails(run: subprocess.CompletedProcess) -> bool:
    return run.returncode != 0 or "Traceback" in run.stderr or "locked" in run.stderr


def mutate(lib: Path, rng: random.Random, stop: threading.Event, done: list) -> None:
    """Add, change, rename and remove pictures until told to stop (seeded)."""
    n = 0
    while not stop.is_set():
        files = sorted(p for p in lib.rglob("*") if p.is_file())
        op = rng.choice(["add", "add", "change", "rename", "remove"]) if files else "add"
        target = rng.choice(files) if files else None
        if op == "add":
            photo_like(rng.randrange(30), (64, 48)).save(lib / rng.choice(["a", "b"]) / f"new{n:04d}.png")
        elif op == "change":
            photo_like(rng.randrange(1000, 2000), (64, 48)).save(target, format="PNG")
        elif op == "rename":
            os.replace(target, target.with_name(f"renamed{n:04d}{target.suffix}"))
        else:
            target.unlink()
        done.append(op)
        n += 1
        time.sleep(rng.uniform(0.02, 0.2))


def read(db: Path, stop: threading.Event, problems: list, count: list) -> None:
    """The README's queries, and in one snapshot: the views show one complete search."""
    queries = [p.read_text() for p in sorted(EXAMPLES.glob("*.sql"))]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30, isolation_level=None)
    while not stop.is_set():
        try:
            conn.execute("BEGIN")
            row = conn.execute("SELECT status, groups FROM searches WHERE id = (SELECT id FROM latest_search)").fetchone()
            shown = conn.execute("SELECT count(DISTINCT group_id) FROM match_groups").fetchone()[0]
            for sql in queries:
                conn.execute(sql).fetchall()
            conn.execute("COMMIT")
            # a search's groups are all written before it is completed; a scan since may only remove some
            if row is not None and (row[0] != "completed" or shown > row[1]):
                problems.append(f"a view showed an unfinished search: {row}, {shown} groups shown")
            count.append(1)
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK") if conn.in_transaction else None
            problems.append(f"reader: {exc}")
        time.sleep(0.05)
    conn.close()


def decide(server, rng: random.Random, problems: list, decided: list) -> None:
    """A reviewer at work: pin, unpin, mark reviewed, 'not duplicates' on what the page shows now."""
    status, page = server.json("/api/groups")
    if status != 200 or not page["groups"]:
        return
    group = rng.choice(page["groups"])
    member = rng.choice(group["members"])
    what, body = rng.choice([("keep", {"image_id": member["image_id"]}), ("unkeep", {"image_id": member["image_id"]}),
                             ("reviewed", {"group_ids": [group["group_id"]]}),
                             ("ignore", {"image_ids": [m["image_id"] for m in group["members"]][:2]})])
    status, answer = server.json(f"/api/{what}", body, csrf=server.csrf())
    # 404/409: the group or image changed under the reviewer (the watcher is busy); 503: the index was busy
    if status not in (200, 404, 409, 503):
        problems.append(f"POST /api/{what}: {status} {answer}")
    decided.append((what, status))


def test_a_watcher_scans_searches_readers_and_the_server_on_one_index(tmp_path, request):
    seconds = SECONDS * request.config.getoption("--torture-trials")
    seed = request.config.getoption("--torture-seed") or 1
    rng = random.Random(seed)
    lib, db = tmp_path / "lib", tmp_path / "i.db"
    for folder in ("a", "b"):
        (lib / folder).mkdir(parents=True)
    for k in range(30):
        photo_like(k, (64, 48)).save(lib / "a" / f"p{k:03d}.png")
        shutil.copy2(lib / "a" / f"p{k:03d}.png", lib / "b" / f"p{k:03d} copy.png")
    assert not fails(imgindex("find", lib, "--db", db, "--processes", 1, "-q", "-o", os.devnull))
    stop, problems, reads, ops, manual, decided = threading.Event(), [], [], [], [], []
    with watching(lib, db) as watcher, serving(db) as server:
        workers = [threading.Thread(target=mutate, args=(lib, rng, stop, ops)),
                   threading.Thread(target=read, args=(db, stop, problems, reads))]
        for w in workers:
            w.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for run in (imgindex("scan", lib, "--db", db, "--processes", 1, "-q"),
                        imgindex("search", "--db", db, "--processes", 1, "-q", "-o", os.devnull)):
                manual.append(run.returncode)
                if fails(run):
                    problems.append(f"{run.args[3]}: {run.returncode} {run.stderr[-500:]}")
            for path in ("/api/state", "/api/groups", "/api/groups?page=2"):
                status, _, body = server.request("GET", path)
                if status not in (200, 503):
                    problems.append(f"GET {path}: {status} {body[:200]!r}")
            decide(server, rng, problems, decided)
        stop.set()
        for w in workers:
            w.join(30)
    assert watcher.returncode == 0
    served = "".join(server.log)
    assert "Traceback" not in served and "Traceback" not in watcher.stderr.read()
    assert problems == [], problems[:5]
    assert len(ops) > 10 and len(reads) > 10 and len(manual) >= 2
    assert any(status == 200 for _, status in decided), decided  # the reviewer got decisions through
    # the end state equals a fresh full run on the same files
    assert not fails(imgindex("scan", lib, "--db", db, "--processes", 1, "-q"))
    assert not fails(imgindex("search", "--db", db, "--processes", 1, "-q", "-o", os.devnull))
    fresh = tmp_path / "fresh.db"
    assert not fails(imgindex("find", lib, "--db", fresh, "--processes", 1, "-q", "-o", os.devnull))

    def shown(path):
        with sqlite3.connect(path) as conn:
            return {frozenset(r) for r in conn.execute("SELECT path_a, path_b FROM match_pairs")}

    with sqlite3.connect(db) as conn:  # the fresh run knows no decision: take them back before comparing
        conn.execute("UPDATE decisions SET revoked_at = 'x' WHERE revoked_at IS NULL")
        conn.execute("UPDATE settings SET value = value + 1 WHERE key = 'decisions_version'")
    assert not fails(imgindex("search", "--db", db, "--processes", 1, "-q", "-o", os.devnull))
    assert shown(db) == shown(fresh)
