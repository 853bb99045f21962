"""imgindex serve, for real: a uvicorn server in a subprocess over a real index of real files."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time

from serve_helpers import serving
from test_decisions import same_pixels

from helpers import contents, inventory, invoke


def library(tmp_path):
    root = tmp_path / "lib"
    for name in ("a.png", "a.bmp", "a.tif"):
        same_pixels(root / name, 1)
    for name in ("b.png", "b.bmp"):
        same_pixels(root / "sub" / name, 2)
    db = tmp_path / "i.db"
    assert invoke("find", root, "--db", db, "--processes", 1, "-q").returncode == 0
    return root, db


def test_the_page_lists_groups_and_a_decision_goes_through_the_api(tmp_path):
    root, db = library(tmp_path)
    with serving(db) as server:
        status, state = server.json("/api/state")
        assert status == 200 and state["groups"] == 2 and state["undecided"] == 2
        status, page = server.json("/api/groups")
        assert [len(g["members"]) for g in page["groups"]] == [3, 2]  # most reclaimable first
        member = page["groups"][0]["members"][2]
        status, report = server.json("/api/keep", {"image_id": member["image_id"]}, csrf=server.csrf())
        assert status == 200 and report["added"] == 1
        assert invoke("keep", "--list", "--db", db).stdout.count(member["name"]) == 1
        status, thumb_headers, body = server.request("GET", f"/thumb/{member['image_id']}?size=160")
        assert status == 200 and body[:2] == b"\xff\xd8" and thumb_headers["etag"]
        assert server.request("GET", f"/thumb/{member['image_id']}?size=160",
                              headers={"If-None-Match": thumb_headers["etag"]})[0] == 304
    time.sleep(0.2)  # the log reader's last lines
    assert server.proc.returncode == 0 and "Stopped." in "".join(server.log)


def test_trash_a_selected_group_then_undo_from_the_api(tmp_path):
    root, db = library(tmp_path)
    before = inventory(root)
    with serving(db) as server:
        csrf = server.csrf()
        _, page = server.json("/api/groups")
        chosen = page["groups"][1]  # the two b's
        status, plan = server.json("/api/plan", {"command": "trash", "groups": [chosen["group_id"]],
                                                 "version": page["version"]}, csrf=csrf)
        assert status == 200 and plan["files"] == 1
        status, job = server.json("/api/apply", {"plan_id": plan["plan_id"]}, csrf=csrf)
        assert status == 200
        while job["status"] == "running":
            job = server.json("/api/state")[1]["job"]
        assert job["status"] == "completed" and job["outcomes"] == {"done": 1}
        assert sum(os.path.exists(p) for p in before) == len(before) - 1
        _, undo = server.json("/api/plan", {"command": "undo"}, csrf=csrf)
        _, job = server.json("/api/apply", {"plan_id": undo["plan_id"]}, csrf=csrf)
        while job["status"] == "running":
            job = server.json("/api/state")[1]["job"]
        assert job["outcomes"] == {"done": 1}
    assert inventory(root) == before


def test_a_decision_sent_twice_is_recorded_once(tmp_path):
    root, db = library(tmp_path)
    with serving(db) as server:
        csrf = server.csrf()
        _, page = server.json("/api/groups")
        group = page["groups"][1]
        first = server.json("/api/ignore", {"group_id": group["group_id"]}, csrf=csrf)
        again = server.json("/api/ignore", {"image_ids": [m["image_id"] for m in group["members"]]}, csrf=csrf)
        assert first[0] == again[0] == 200 and first[1]["added"] == 1 and again[1]["unchanged"] == 1
    assert sqlite3.connect(db).execute("SELECT count(*) FROM decisions").fetchone() == (1,)


def test_a_decision_waits_for_a_writer_instead_of_failing(tmp_path):
    root, db = library(tmp_path)
    with serving(db) as server:
        csrf = server.csrf()
        _, page = server.json("/api/groups")
        writer = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # a scan in the middle of a batch
        threading.Timer(1.0, writer.rollback).start()
        started = time.monotonic()
        status, report = server.json("/api/keep", {"image_id": page["groups"][0]["members"][1]["image_id"]}, csrf=csrf)
        assert status == 200 and report["added"] == 1 and time.monotonic() - started >= 0.9


def test_port_in_use_is_a_clear_message(tmp_path):
    root, db = library(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ran = invoke("serve", "--db", db, "--port", taken.getsockname()[1])
    taken.close()
    assert ran.returncode == 1 and "is in use" in ran.stderr and "--port" in ran.stderr


def test_a_server_killed_mid_action_is_settled_by_the_next_command(tmp_path):
    root = tmp_path / "lib"
    for seed in range(150):
        same_pixels(root / f"p{seed}.png", seed, (24, 18))
        same_pixels(root / "copies" / f"p{seed}.bmp", seed, (24, 18))
    db = tmp_path / "i.db"
    assert invoke("find", root, "--db", db, "--processes", 1, "-q", "--px-size", 16).returncode == 0
    before = contents(root, tmp_path / "dups")
    with serving(db, "--move-to", tmp_path / "dups") as server:
        csrf = server.csrf()
        _, page = server.json("/api/groups?per_page=200")
        _, plan = server.json("/api/plan", {"command": "move", "groups": [g["group_id"] for g in page["groups"]],
                                            "version": page["version"]}, csrf=csrf)
        assert plan["files"] == 150
        server.json("/api/apply", {"plan_id": plan["plan_id"]}, csrf=csrf)
        while (server.json("/api/state")[1]["job"] or {}).get("done", 0) < 3:
            pass
        server.proc.kill()  # SIGKILL mid-action
        server.proc.wait()
    assert invoke("status", "--db", db).returncode == 0
    ran = invoke("undo", "--db", db, "--yes")  # recovers the interrupted run first, then puts back what it moved
    assert ran.returncode == 0, ran.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM actions WHERE outcome = 'planned'").fetchone() == (0,)
    assert contents(root, tmp_path / "dups") == before  # every picture exactly once, wherever it is
    assert not any((tmp_path / "dups").rglob("*.bmp"))  # and the undo put every moved one back
