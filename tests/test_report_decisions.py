"""The HTML report shows review decisions: each kept member says why it is kept (the keeper rule's
"keeper", "pinned keeper", "reference folder"), a group that keeps more than its keeper says so,
and the bytes reclaimable count only the members a move or delete would act on."""

from __future__ import annotations

import json
import os
import re

import pytest

from imgindex import Index

from helpers import headless_chromium, photo_like



def page_data(html_text: str) -> dict:
    raw = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html_text, re.S).group(1)
    return json.loads(raw)


def same_pixels(path, seed: int, level: int) -> str:
    """One picture (by seed) as a PNG at a zlib level: identical pixels (MSE 0), different bytes and sizes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    photo_like(seed, (96, 72)).save(path, compress_level=level)
    return str(path)


@pytest.fixture(scope="module")
def decided(tmp_path_factory):
    """Five groups of byte-different copies, then pins and a reference folder that overrule the keeper rule.

    The keeper rule (resolution, size, path) picks the largest file, the level-0 PNG; every pin and
    the reference folder go to a smaller copy, so they show only if the decisions do.
    """
    base = tmp_path_factory.mktemp("report-decisions")
    root = base / "photos"
    p = {
        "A_pinned": same_pixels(root / "camera" / "A.png", 1, 9),
        "A_dup": same_pixels(root / "backup" / "A.png", 1, 0),
        "B_reference": same_pixels(root / "archive" / "B.png", 2, 9),
        "B_dup1": same_pixels(root / "camera" / "B.png", 2, 0),
        "B_dup2": same_pixels(root / "backup" / "B.png", 2, 5),
        "C_pinned": same_pixels(root / "camera" / "C.png", 3, 9),
        "C_reference": same_pixels(root / "archive" / "C.png", 3, 5),
        "C_dup": same_pixels(root / "backup" / "C.png", 3, 0),
        "D_pinned1": same_pixels(root / "camera" / "D.png", 4, 9),
        "D_pinned2": same_pixels(root / "backup" / "D.png", 4, 5),
        "D_dup": same_pixels(root / "trip" / "D.png", 4, 0),
        "E_rule": same_pixels(root / "camera" / "E.png", 5, 0),
        "E_dup": same_pixels(root / "backup" / "E.png", 5, 9),
    }
    db = base / "index.db"
    with Index(db) as index:
        index.scan([root], processes=1)
        index.search(similarity="duplicates", processes=1)
        rule_keepers = set(index.result())
        index.keep([p["A_pinned"], p["C_pinned"], p["D_pinned1"], p["D_pinned2"]])
        index.add_reference([root / "archive"])
        summary = index.report(base / "report.html", processes=1)
        plan = index.plan_delete()
    html = (base / "report.html").read_text(encoding="utf-8")
    return {"paths": p, "rule_keepers": rule_keepers, "summary": summary, "plan": plan, "html": html,
            "data": page_data(html), "db": db}


def test_the_decisions_overrule_the_keeper_rule_here(decided):
    """Without the decisions the rule keeps the largest copies: the labels below come from the decisions."""
    p = decided["paths"]
    assert decided["rule_keepers"] == {p["A_dup"], p["B_dup1"], p["C_dup"], p["D_dup"], p["E_rule"]}
    for group in "ABCDE":
        sizes = [os.path.getsize(path) for name, path in p.items() if name[0] == group]
        assert len(set(sizes)) == len(sizes)


def test_each_member_says_why_it_is_kept_and_only_kept_members_do(decided):
    p = decided["paths"]
    rows = {m[0]: m for _, _, members in decided["data"]["groups"] for m in members}
    assert set(rows) == set(p.values())
    label = {name: rows[path][12] for name, path in p.items()}
    assert label == {
        "A_pinned": "pinned keeper", "A_dup": None,
        "B_reference": "reference folder", "B_dup1": None, "B_dup2": None,
        "C_pinned": "pinned keeper", "C_reference": "reference folder", "C_dup": None,
        "D_pinned1": "pinned keeper", "D_pinned2": "pinned keeper", "D_dup": None,
        "E_rule": "keeper", "E_dup": None,
    }
    keepers = {name for name, path in p.items() if rows[path][6]}
    assert keepers >= {"A_pinned", "B_reference", "C_pinned", "E_rule"}
    assert len(keepers & {"D_pinned1", "D_pinned2"}) == 1 and len(keepers) == 5  # one keeper per group
    for _, _, members in decided["data"]["groups"]:
        kept = [m[12] is not None for m in members]
        assert members[0][6] == 1 and kept == sorted(kept, reverse=True)  # keeper, other kept, then the rest


def test_a_group_that_keeps_more_than_its_keeper_says_so(decided):
    p = decided["paths"]
    data = decided["data"]
    notes = {frozenset(m[0] for m in members): data["keptNotes"].get(str(gid), "")
             for gid, _, members in data["groups"]}
    assert notes == {
        frozenset({p["A_pinned"], p["A_dup"]}): "",
        frozenset({p["B_reference"], p["B_dup1"], p["B_dup2"]}): "",
        frozenset({p["C_pinned"], p["C_reference"], p["C_dup"]}): "2 kept: pinned, reference",
        frozenset({p["D_pinned1"], p["D_pinned2"], p["D_dup"]}): "2 kept: 2 pinned",
        frozenset({p["E_rule"], p["E_dup"]}): "",
    }
    assert "Besides each group's keeper, 2 images are kept" in decided["html"]


def test_reclaimable_bytes_are_those_a_delete_would_free(decided):
    p = decided["paths"]
    acted_on = {p[name] for name in ("A_dup", "B_dup1", "B_dup2", "C_dup", "D_dup", "E_dup")}
    for _, reclaimable, members in decided["data"]["groups"]:
        assert reclaimable == sum(os.path.getsize(m[0]) for m in members if m[0] in acted_on)
    total = sum(os.path.getsize(path) for path in acted_on)
    assert decided["summary"].bytes_reclaimable == total
    assert {a.source for a in decided["plan"].actions} == acted_on and decided["plan"].bytes == total
    shown = [g[1] for g in decided["data"]["groups"]]
    assert shown == sorted(shown, reverse=True)


@pytest.mark.browser
def test_the_labels_in_chromium(decided, tmp_path_factory):
    from selenium.webdriver.common.by import By

    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"), checks="the labels", height=1600)
    try:
        driver.get((decided["db"].parent / "report.html").as_uri())
        p = decided["paths"]
        badges = {box.get_attribute("title"): (box.get_attribute("class"),
                                               box.find_element(By.CLASS_NAME, "badge").text)
                  for box in driver.find_elements(By.CSS_SELECTOR, ".member")}
        assert badges[p["A_pinned"]] == ("member keeper", "pinned keeper")
        assert badges[p["C_reference"]] == ("member kept", "reference folder · MSE 0.000")
        assert badges[p["E_rule"]] == ("member keeper", "keeper")
        assert {path for path, (css, _) in badges.items() if css == "member"} == {
            p[n] for n in ("A_dup", "B_dup1", "B_dup2", "C_dup", "D_dup", "E_dup")}
        assert all(text == "MSE 0.000" for css, text in badges.values() if css == "member")
        heads = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".group-head")]
        assert sum("· 2 kept: pinned, reference" in h for h in heads) == 1
        assert sum("· 2 kept: 2 pinned" in h for h in heads) == 1
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()
