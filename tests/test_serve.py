"""imgindex serve, for real: a uvicorn server in a subprocess over a real index of real files."""

from __future__ import annotations

import os

from serve_helpers import serving
from test_decisions import same_pixels

from helpers import inventory, invoke


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
    assert server.proc.returncode == 0 and "Stopped." in server.proc.stderr.read()


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
