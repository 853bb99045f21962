"""The HTML report: numbers equal SQL, the histogram equals a brute-force nearest-neighbour search,
and the page works in a real headless Chromium (no console errors, every thumbnail decodes, every
group drawn across the pages, hostile file names shown as text)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from imgindex import Index
from imgindex.db.queries import load_tensors
from imgindex.report.data import ReportMember, ThresholdView, histogram, histogram_cap, threshold_view
from imgindex.report.render import GROUPS_PER_PAGE, render

from helpers import best_match, headless_chromium, inventory, invoke, photo_like, write_image

HOSTILE = "<script>alert(1)</script>.jpg"  # a path: "<script>alert(1)</" is a folder, "script>.jpg" its file
HOSTILE_NAME = "<img src=x onerror=alert(2)>.jpg"


def page_data(html_text: str) -> dict:
    raw = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html_text, re.S).group(1)
    return json.loads(raw)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """60 groups (enough for two pages), a near miss, a missing original and a hostile file name."""
    base = tmp_path_factory.mktemp("report")
    root = base / "photos"
    (root / "backup").mkdir(parents=True)
    for i in range(57):  # pairs of byte copies, of different sizes so the order by bytes is visible
        write_image(root / "camera" / f"IMG_{i:04d}.png", seed=100 + i, size=(64 + i, 48 + i))
        shutil.copy2(root / "camera" / f"IMG_{i:04d}.png", root / "backup" / f"IMG_{i:04d}.png")
    write_image(root / "trip" / "big.jpg", seed=7, size=(320, 240), quality=95)  # a group of three
    write_image(root / "trip" / "big-q70.jpg", seed=7, size=(320, 240), quality=70)
    photo_like(7, (320, 240)).rotate(90, expand=True).save(root / "trip" / "big-turned.jpg", quality=95)
    write_image(root / "odd" / HOSTILE, seed=8)
    write_image(root / "odd" / "plain-copy.jpg", seed=8)
    write_image(root / "odd" / HOSTILE_NAME, seed=8)
    write_image(root / "gone" / "will-vanish.jpg", seed=9)
    write_image(root / "gone" / "stays.jpg", seed=9)
    near = np.asarray(photo_like(11, (96, 72))).astype(np.int16)
    (root / "near").mkdir()
    Image.fromarray(near.astype(np.uint8)).save(root / "near" / "a.png")
    Image.fromarray(np.clip(near + 3, 0, 255).astype(np.uint8)).save(root / "near" / "a-brighter.png")  # MSE ~9
    db = base / "index.db"
    with Index(db) as index:
        index.scan([root], processes=1)
        # pixels only: the near miss (a uniformly brighter copy) is what the tone signal would match
        index.search(similarity="similar", signals="pixels", processes=1)
    os.remove(root / "gone" / "will-vanish.jpg")  # after the search: the report must say so, not crash
    before = inventory(root)
    out = base / "report.html"
    with Index(db) as index:
        summary = index.report(out, processes=2)
    return {"root": root, "db": db, "html": out, "summary": summary, "before": before, "base": base}


def test_report_changes_no_file(library):
    assert inventory(library["root"]) == library["before"]


def test_summary_equals_sql(library):
    s = library["summary"]
    conn = sqlite3.connect(library["db"])
    assert s.groups == conn.execute("SELECT count(DISTINCT group_id) FROM match_groups").fetchone()[0] == 60
    assert s.images == conn.execute("SELECT count(*) FROM match_groups").fetchone()[0]
    assert s.bytes_reclaimable == conn.execute("SELECT sum(size) FROM match_groups WHERE keep_reason IS NULL").fetchone()[0]
    assert s.missing == 1 and s.groups_shown == 60
    assert s.size_bytes == library["html"].stat().st_size


def test_groups_come_most_reclaimable_first_with_keepers_marked(library):
    data = page_data(library["html"].read_text(encoding="utf-8"))
    conn = sqlite3.connect(library["db"])
    sql = {gid: (sum(size for size, keeper in rows if not keeper)) for gid, rows in _by_group(conn).items()}
    shown = [g[1] for g in data["groups"]]
    assert shown == sorted(sql.values(), reverse=True)
    assert [g[1] for g in data["groups"]] == [sql[g[0]] for g in data["groups"]]
    keepers = dict(conn.execute("SELECT path, is_keeper FROM match_groups"))
    for _, _, members in data["groups"]:
        assert members[0][6] == 1 and all(m[6] == 0 for m in members[1:])
        assert all(keepers[m[0]] == m[6] for m in members)


def _by_group(conn) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = {}
    for gid, size, keeper in conn.execute("SELECT group_id, size, is_keeper FROM match_groups"):
        out.setdefault(gid, []).append((size, keeper))
    return out


def test_histogram_and_near_misses_equal_a_brute_force_search(library):
    search, cap, view, rows, tensors = _looked_past(library)
    nearest = {r[0]: np.inf for r in rows}
    pair_mse = []
    for k, (a, wa, ha) in enumerate(rows):
        for b, wb, hb in rows[k + 1:]:
            if sorted((wa, ha)) != sorted((wb, hb)):
                continue  # same_dim: never compared
            mse = best_match(tensors[a], tensors[b], rotate=True, mirror=False)[0]
            if mse <= cap:
                pair_mse.append(mse)
                nearest[a], nearest[b] = min(nearest[a], mse), min(nearest[b], mse)
    finite = np.array([v for v in nearest.values() if np.isfinite(v)])
    counts, edges = histogram(view)
    reference, _ = np.histogram(finite, bins=edges)
    assert counts.tolist() == reference.tolist()
    assert view.images == len(rows) and len(view.nearest) == len(finite)
    beyond = sorted(m for m in pair_mse if m > search[1])
    assert view.near_miss_count == len(beyond) >= 1
    assert [round(m, 6) for _, _, m in view.near_misses] == [round(m, 6) for m in beyond[: len(view.near_misses)]]
    assert {os.path.basename(a.path) for a, b, _ in view.near_misses[:1]} <= {"a.png", "a-brighter.png"}


def test_in_a_large_index_the_report_looks_past_the_threshold_from_a_sample(library, monkeypatch):
    """Above NEAR_SAMPLE_OVER images the report looks at the neighbours of a random sample only (seeded by
    the search), through the point index: each sampled image's nearest neighbour among all equals brute force."""
    from imgindex.compare import run as compare_run

    monkeypatch.setattr(compare_run, "NEAR_SAMPLE_OVER", 4)  # the library's few images count as many
    monkeypatch.setattr(compare_run, "NEAR_SAMPLE", 4)
    search, cap, view, rows, tensors = _looked_past(library)
    looked = np.sort(np.random.default_rng(search[0]).choice(np.array([r[0] for r in rows]), 4, replace=False))
    dims = {r[0]: sorted(r[1:]) for r in rows}
    nearest = []
    for a in looked.tolist():
        mses = [best_match(tensors[a], tensors[b], rotate=True, mirror=False)[0] for b in tensors
                if b != a and dims[a] == dims[b]]
        best = min([m for m in mses if m <= cap], default=np.inf)
        nearest += [best] if np.isfinite(best) else []
    assert view.sampled and view.images == 4 and view.population == len(rows) > 4
    assert sorted(np.round(view.nearest, 6).tolist()) == sorted(np.round(nearest, 6).tolist())


def _looked_past(library):
    """(latest search (id, threshold), cap, its threshold view, image rows (id, width, height), tensors by id)."""
    with Index(library["db"]) as index:
        search = index.db.execute("SELECT id, threshold FROM latest_search JOIN searches USING (id)").fetchone()
        cap = histogram_cap(search[1])
        view = threshold_view(index.db, str(index.path), search[0], cap, processes=1)
        rows = index.db.execute("SELECT id, width, height FROM images ORDER BY id").fetchall()
        tensors = {i: t for i, t in zip((r[0] for r in rows), _tensors(index, [r[0] for r in rows]))}
    return search, cap, view, rows, tensors


def _tensors(index, ids):
    return load_tensors(index.db, np.array(ids), index.px_size)


def test_hostile_name_never_reaches_the_markup_raw(library):
    text = library["html"].read_text(encoding="utf-8")
    assert HOSTILE not in text and HOSTILE_NAME not in text  # in the JSON < and > are \\u003c escapes
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e.jpg" in text
    assert text.count("<script") == 2  # the data block and the page's own script


def test_near_misses_go_through_autoescape():
    """The near misses are drawn in the page itself, file names and all: the template makes them text."""
    def member(path, digest):
        return ReportMember(1, path, os.path.dirname(path), 10, 10, 100, "JPEG", digest, False, None, None, False)

    hostile, undecodable = "/photos/" + HOSTILE_NAME, "/photos/caf\udce9.jpg"  # a Latin-1 name, surrogate-escaped
    view = ThresholdView(30.0, 2, np.array([9.0, 9.0]), ((member(hostile, "a"), member(undecodable, "b"), 9.0),), 1)
    stats = {"id": 1, "threshold": 6.0, "similarity": "similar", "rotate": True, "mirror": False, "same_dim": True,
             "in_folder": False, "finished_at": "2024-01-01T00:00:00"}
    thumbs = {"a": ("QUJD", ""), "b": (None, "cannot be shown: <b>bad</b>")}
    page = render(stats, [], [], view, thumbs, ("imgindex delete --db x --dry-run",), thumb_size=64)
    assert HOSTILE_NAME not in page and "<b>bad</b>" not in page
    assert 'alt="&lt;img src=x onerror=alert(2)&gt;.jpg"' in page
    assert '<div class="path">/photos/&lt;img src=x onerror=alert(2)&gt;.jpg</div>' in page
    assert "cannot be shown: &lt;b&gt;bad&lt;/b&gt;" in page and "/photos/caf\\udce9.jpg" in page
    page.encode("utf-8")  # no raw surrogate reached the page
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)  # the CSP pins exactly this text
    assert "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() in page


def test_limit_groups_keeps_the_most_reclaimable(library, tmp_path):
    full = page_data(library["html"].read_text(encoding="utf-8"))
    with Index(library["db"]) as index:
        summary = index.report(tmp_path / "top.html", limit_groups=3, thumb_size=64, processes=1)
    data = page_data((tmp_path / "top.html").read_text(encoding="utf-8"))
    assert summary.groups == 60 and summary.groups_shown == 3
    assert [g[0] for g in data["groups"]] == [g[0] for g in full["groups"][:3]]
    assert max(max(Image.open(io.BytesIO(base64.b64decode(t))).size) for t in data["thumbs"]) <= 64


def test_cli_report_prints_the_next_commands_and_refuses_bad_input(library, tmp_path):
    out = invoke("report", "--db", library["db"], "-o", tmp_path / "r.html")
    assert out.returncode == 0, out.stderr
    assert f"imgindex move-to DEST --db {library['db']} --dry-run" in out.stdout
    assert "Nothing was changed" in out.stdout and (tmp_path / "r.html").stat().st_size > 10_000
    bad = invoke("report", "--db", library["db"], "--thumb-size", "5")
    assert bad.returncode == 2 and "--thumb-size" in bad.stderr
    nowhere = invoke("report", "--db", library["db"], "-o", tmp_path / "no" / "r.html")
    assert nowhere.returncode == 1 and "does not exist" in nowhere.stderr and "Traceback" not in nowhere.stderr
    photo = write_image(tmp_path / "IMG_0001.jpg", seed=1)
    before = photo.read_bytes()
    clobber = invoke("report", "--db", library["db"], "-o", photo)
    assert clobber.returncode == 1 and "not an imgindex report" in clobber.stderr
    assert photo.read_bytes() == before  # a typo in -o never costs a photo
    again = invoke("report", "--db", library["db"], "-o", tmp_path / "r.html", "-q")
    assert again.returncode == 0  # its own earlier report is replaced
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    empty = tmp_path / "empty.db"
    Index(empty).close()
    none = invoke("report", "--db", empty, "-o", tmp_path / "e.html")
    assert none.returncode == 1 and "imgindex search" in none.stderr


# ---------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"), checks="the report", height=1600)
    yield driver
    driver.quit()


def _images_decoded(driver) -> tuple[int, int]:
    return tuple(driver.execute_script(
        "var imgs = Array.from(document.images);"
        "return [imgs.length, imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length];"))


@pytest.mark.browser
def test_the_page_in_chromium(library, browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    browser.get(library["html"].as_uri())
    assert browser.find_element(By.ID, "groups")
    pages = int(browser.execute_script("return document.body.dataset.pages"))
    assert pages == -(-60 // GROUPS_PER_PAGE) == 2
    group_ids, placeholders, text = [], 0, ""
    for page in range(pages):
        if page:
            browser.find_elements(By.CSS_SELECTOR, "button.next")[0].click()
        assert browser.execute_script("return document.body.dataset.page") == str(page)
        group_ids += [e.get_attribute("data-group-id") for e in browser.find_elements(By.CSS_SELECTOR, ".group")]
        total, decoded = _images_decoded(browser)
        assert total > 0 and decoded == total  # every thumbnail on the page decodes
        placeholders += len(browser.find_elements(By.CSS_SELECTOR, ".group .missing"))
        text += browser.execute_script("return document.body.innerText")
        if page == 0:
            shot = tmp_path / "report.png"
            browser.save_screenshot(str(shot))
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    conn = sqlite3.connect(library["db"])
    assert sorted(map(int, group_ids)) == sorted(r[0] for r in conn.execute("SELECT DISTINCT group_id FROM match_groups"))
    assert placeholders == 1 and "missing: the original is no longer there" in text
    assert HOSTILE_NAME in text  # shown as text (its file name), and the other as folder + name...
    assert "odd/<script>alert(1)</\n" in text and "\nscript>.jpg\n" in text
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # ...and never run
    assert browser.execute_script("return document.scripts.length") == 2
    assert "keeper" in text and "MSE 0.000" in text and re.search(r"MSE \d+\.\d+ · turned (90|270)°", text)
    assert "threshold 6" in browser.find_element(By.CSS_SELECTOR, "svg.histogram").text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
