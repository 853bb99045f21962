"""imgindex serve in a real headless Chromium: the review journey (look, compare, decide, move, undo)
checked against the database and the files on disk, a watcher's new group appearing live, and a
read-only server offering nothing to click but the pager.

Every wait is explicit (WebDriverWait until the page shows it); the page re-draws its groups after
each change, so elements are found again, never held across a change. With IMGINDEX_SCREENSHOTS=1
the journey also writes the README's screenshots to examples/ (a normal run leaves them alone).
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import sqlite3
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from serve_helpers import serving
from test_watch import watching

from helpers import headless_chromium, inventory, invoke, photo_like

EXAMPLES = Path(__file__).parent.parent / "examples"
SCREENSHOTS = os.environ.get("IMGINDEX_SCREENSHOTS") == "1"
WAIT = 30.0  # seconds any one change may take to show (the page polls every 2 s; a watcher settles first)
SIZE = (400, 300)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    # tall enough that every group's thumbnails load (they are loading=lazy)
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"), checks="the review app", height=2200)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser):
    """The shared browser with the console log of earlier tests drained; left on a blank page after (a page
    still polling a stopped server would log refused connections into the next test)."""
    browser.get_log("browser")
    yield browser
    browser.get("about:blank")


def console_errors(driver) -> list[dict]:
    """SEVERE console entries (the favicon the browser asks for on its own is answered too: 204)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait(driver, until, message: str, timeout: float = WAIT):
    from selenium.common.exceptions import (ElementClickInterceptedException, NoSuchElementException,
                                            StaleElementReferenceException)
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (StaleElementReferenceException, NoSuchElementException, ElementClickInterceptedException)
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored).until(until, message)


def shown_groups(driver) -> dict[int, list[str]]:
    """group id -> member file names, as the page shows them now (read in one go: no stale elements)."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('section.group')).map(function (s) {"
        "  return [Number(s.dataset.group), Array.from(s.querySelectorAll('.member .name'))"
        "    .map(function (n) { return n.textContent; })]; });")
    return {gid: names for gid, names in rows}


def group_of(driver, name: str) -> int:
    return next(gid for gid, names in shown_groups(driver).items() if name in names)


def member_card(driver, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//div[contains(@class, 'member')][div[@class='name' and text()='{name}']]")


def click(driver, find, what: str):
    """Find, scroll to the middle (clear of the sticky header), click; again if the page re-drew meanwhile."""
    def attempt(d):
        element = find(d)
        d.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()
        return True

    wait(driver, attempt, f"could not click {what}")


def status_line(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "status").text


def overlay_open(driver) -> bool:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "overlay").is_displayed()


def all_decoded(driver, scope: str) -> bool:
    return driver.execute_script(
        "var imgs = Array.from(document.querySelectorAll(arguments[0]));"
        "return imgs.length > 0 && imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });", scope)


@contextmanager
def viewport(driver, width: int, height: int):
    """The window at another size for a while (the screenshots are 1280x1000; the test runs taller)."""
    saved = driver.get_window_size()
    driver.set_window_size(width, height)
    try:
        yield
    finally:
        driver.set_window_size(saved["width"], saved["height"])


def screenshot(driver, name: str) -> None:
    """examples/NAME as a JPEG of the viewport (1280x1000), only when asked (IMGINDEX_SCREENSHOTS=1)."""
    if not SCREENSHOTS:
        return
    png = driver.get_screenshot_as_png()
    out = EXAMPLES / name
    Image.open(io.BytesIO(png)).convert("RGB").save(out, "JPEG", quality=85, optimize=True)
    assert out.stat().st_size < 300_000


def query(db: Path, sql: str, args=()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def pictures(tmp_path) -> tuple[Path, Path]:
    """Three groups of photo-like 400x300 pictures in three folders, and a picture with no copy:

    - forest: a PNG, its byte copy and a JPEG of it;
    - city: a PNG, a BMP of the same pixels (the keeper: the most bytes) and a JPEG at half size;
    - beach: a PNG, a JPEG and a JPEG turned a quarter (its pixels stored portrait).
    Every file of the city group has its own content, so 'not duplicates' records each pair.
    """
    lib = tmp_path / "Pictures"
    for folder in ("camera", "backup", "phone"):
        (lib / folder).mkdir(parents=True)
    photo_like(1, SIZE).save(lib / "camera" / "beach.png")
    photo_like(1, SIZE).save(lib / "backup" / "beach.jpg", quality=92)
    photo_like(1, SIZE).rotate(90, expand=True).save(lib / "phone" / "beach-turned.jpg", quality=92)
    photo_like(2, SIZE).save(lib / "camera" / "forest.png")
    photo_like(2, SIZE).save(lib / "backup" / "forest.jpg", quality=85)
    shutil.copy2(lib / "camera" / "forest.png", lib / "phone" / "forest copy.png")
    photo_like(3, SIZE).save(lib / "camera" / "city.png")
    photo_like(3, SIZE).save(lib / "backup" / "city.bmp")
    photo_like(3, SIZE).resize((SIZE[0] // 2, SIZE[1] // 2)).save(lib / "phone" / "city-small.jpg", quality=90)
    photo_like(4, SIZE).save(lib / "camera" / "lake.png")
    db = tmp_path / "pictures.db"
    found = invoke("find", lib, "--db", db, "--similarity", "similar", "--no-same-dim", "--processes", 1, "-q")
    assert found.returncode == 0, found.stderr
    return lib, db


@pytest.mark.slow
def test_the_review_journey(page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    lib, db = pictures(tmp_path)
    dups = tmp_path / "Dups"  # a capital: the plan's title must keep the path's own letters
    in_index = query(db, "SELECT count(DISTINCT group_id) FROM match_groups")[0][0]
    assert in_index == 3
    hashes = dict(query(db, "SELECT path, content_hash FROM images"))
    before = inventory(lib)
    with serving(db, "--move-to", str(dups)) as server:
        # -- the token becomes a cookie and leaves the address; every group is drawn
        page.get(server.url)
        wait(page, lambda d: len(shown_groups(d)) == in_index, f"the page never showed the {in_index} groups")
        assert "token" not in page.current_url and page.current_url == server.base + "/"
        assert page.get_cookie("imgindex_token")["httpOnly"] is True
        wait(page, lambda d: all_decoded(d, "section.group img"), "a thumbnail did not load")
        assert sorted(map(sorted, shown_groups(page).values())) == [
            ["beach-turned.jpg", "beach.jpg", "beach.png"], ["city-small.jpg", "city.bmp", "city.png"],
            ["forest copy.png", "forest.jpg", "forest.png"]]
        assert "3 groups, 3 left to review (0 marked reviewed, 0 with decisions)" in page.find_element(By.ID, "summary").text
        # a byte copy is a duplicate by definition (the index refuses 'not duplicates' for it): not offered
        offered = {n: [b.text for b in member_card(page, n).find_elements(By.TAG_NAME, "button")]
                   for n in ("forest.png", "forest copy.png", "forest.jpg")}
        assert offered == {"forest.png": ["Keep this one", "Make its folder a reference"],
                           "forest copy.png": ["Keep this one", "Make its folder a reference"],
                           "forest.jpg": ["Keep this one", "Not a duplicate of the keeper",
                                          "Make its folder a reference"]}
        assert page.find_element(By.ID, "move-selected").is_displayed()  # started with --move-to
        with viewport(page, 1280, 1000):
            page.execute_script("window.scrollTo(0, 0);")
            screenshot(page, "serve-groups.jpg")

        # -- compare: the turned copy beside its keeper, flicker, then the difference drawn back upright
        click(page, lambda d: member_card(d, "beach-turned.jpg").find_element(By.TAG_NAME, "img"), "a thumbnail")
        wait(page, overlay_open, "the compare overlay did not open")
        assert "beach.png" in page.find_element(By.ID, "overlay-body").text
        wait(page, lambda d: all_decoded(d, "#overlay-body img") and len(d.find_elements(By.CSS_SELECTOR,
             "#overlay-body img")) == 2, "the originals did not load")
        keeper_img, member_img = page.find_elements(By.CSS_SELECTOR, "#overlay-body img")
        click(page, lambda d: d.find_element(By.ID, "flicker"), "Flicker")
        wait(page, lambda d: keeper_img.is_displayed() != member_img.is_displayed(), "Flicker shows one at a time")
        first = member_img.is_displayed()
        wait(page, lambda d: member_img.is_displayed() != first, "Flicker does not alternate")
        click(page, lambda d: d.find_element(By.ID, "flicker"), "Flicker (stop)")
        wait(page, lambda d: keeper_img.is_displayed() and member_img.is_displayed(), "Flicker did not stop")
        click(page, lambda d: d.find_element(By.ID, "difference"), "Difference")
        wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#overlay-body canvas"), "no difference drawn")
        width, height, mean = page.execute_script(
            "var c = document.querySelector('#overlay-body canvas'), d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data, s = 0;"
            "for (var i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];"
            "return [c.width, c.height, s / (d.length / 4 * 3)];")
        assert (width, height) == SIZE  # in the keeper's orientation...
        assert mean < 20  # ...and nearly black: the turned copy was turned back (unturned, it is ~100)
        with viewport(page, 1280, 1000):
            screenshot(page, "serve-compare.jpg")
        click(page, lambda d: d.find_element(By.ID, "overlay-close"), "Close")
        wait(page, lambda d: not overlay_open(d), "the overlay did not close")
        click(page, lambda d: member_card(d, "forest.jpg").find_element(By.TAG_NAME, "img"), "a thumbnail")
        wait(page, overlay_open, "the compare overlay did not open again")
        ActionChains(page).send_keys(Keys.ESCAPE).perform()
        wait(page, lambda d: not overlay_open(d), "Escape did not close the overlay")

        # -- not duplicates: every pair of the city group is recorded, and the group leaves the page
        city = group_of(page, "city.png")
        click(page, lambda d: d.find_element(By.CSS_SELECTOR, f"section[data-group='{city}'] button.ignore-group"),
              "Not duplicates (all of them)")
        wait(page, lambda d: city not in shown_groups(d) and len(shown_groups(d)) == 2, "the ignored group stayed")
        city_hashes = [hashes[str(lib / f)] for f in ("camera/city.png", "backup/city.bmp", "phone/city-small.jpg")]
        recorded = query(db, "SELECT hash_a, hash_b FROM decisions"
                             " WHERE kind = 'not-duplicates' AND revoked_at IS NULL")
        assert sorted(map(sorted, recorded)) == sorted(sorted(p) for p in itertools.combinations(city_hashes, 2))
        assert status_line(page).startswith("Recorded (ignore).")

        # -- keep a lower-quality member: pinned in the index, labelled on the page, offered Unpin
        assert member_card(page, "beach.jpg").find_element(By.CSS_SELECTOR, ".badge").text == "lower quality"
        click(page, lambda d: member_card(d, "beach.jpg").find_element(By.CSS_SELECTOR, "button.keep"), "Keep this one")
        wait(page, lambda d: "pinned" in member_card(d, "beach.jpg").find_element(By.CSS_SELECTOR, ".badge").text,
             "the pinned image is not labelled")
        assert member_card(page, "beach.jpg").find_element(By.CSS_SELECTOR, "button.unkeep").text == "Unpin"
        assert query(db, "SELECT keep_reason FROM match_groups WHERE path = ?", [str(lib / "backup" / "beach.jpg")]) \
            == [("pinned",)]
        assert query(db, "SELECT hash_a FROM decisions WHERE kind = 'keep' AND revoked_at IS NULL") \
            == [(hashes[str(lib / "backup" / "beach.jpg")],)]
        assert not page.find_elements(By.CSS_SELECTOR, ".badge.changed")  # the page's own decision: not "changed"
        click(page, lambda d: member_card(d, "beach.jpg").find_element(By.CSS_SELECTOR, "button.unkeep"), "Unpin")
        wait(page, lambda d: member_card(d, "beach.jpg").find_element(By.CSS_SELECTOR, ".badge").text
             == "lower quality", "Unpin did not take the label back")
        assert query(db, "SELECT count(*) FROM decisions WHERE kind = 'keep' AND revoked_at IS NULL") == [(0,)]
        click(page, lambda d: member_card(d, "beach.jpg").find_element(By.CSS_SELECTOR, "button.keep"), "Keep again")
        wait(page, lambda d: member_card(d, "beach.jpg").find_elements(By.CSS_SELECTOR, "button.unkeep"), "not pinned")

        # -- move the lower-quality files of the selected forest group; then undo puts them back
        forest = group_of(page, "forest.png")
        lower = {p for (p,) in query(db, "SELECT path FROM match_groups WHERE group_id = ? AND keep_reason IS NULL",
                                     [forest])}
        assert lower == {str(lib / "phone" / "forest copy.png"), str(lib / "backup" / "forest.jpg")}
        click(page, lambda d: d.find_element(By.CSS_SELECTOR, f"section[data-group='{forest}'] input.select"),
              "the group's checkbox")
        click(page, lambda d: d.find_element(By.ID, "move-selected"), "Move lower-quality of selected groups…")
        wait(page, overlay_open, "no plan shown")
        assert page.find_element(By.CSS_SELECTOR, "#overlay-body h2").text == f"Plan: move under {dups}"
        assert page.find_element(By.ID, "carry-out").text.startswith(f"Move under {dups}: 2 files")
        assert {li.text.split(" → ")[0] for li in page.find_elements(By.CSS_SELECTOR, "#overlay-body li")} == lower
        assert inventory(lib) == before  # a plan shown moves nothing
        click(page, lambda d: d.find_element(By.ID, "carry-out"), "carry out")
        wait(page, lambda d: status_line(d).startswith("Move completed: 2 done"), "the move did not complete")
        assert not overlay_open(page)
        moved, left = inventory(dups), inventory(lib)
        assert set(left) == set(before) - lower  # moved...
        assert Counter(moved.values()) == Counter(before[p] for p in lower)  # ...and nothing lost
        wait(page, lambda d: forest not in shown_groups(d), "the acted-on group stayed")
        assert not page.find_element(By.CSS_SELECTOR, "#select-page").is_selected()

        click(page, lambda d: d.find_element(By.ID, "undo"), "Undo the last action…")
        wait(page, lambda d: overlay_open(d)
             and d.find_element(By.ID, "carry-out").text.startswith("Put back: 2 files"), "no undo plan shown")
        click(page, lambda d: d.find_element(By.ID, "carry-out"), "carry out the undo")
        wait(page, lambda d: status_line(d).startswith("Undo completed: 2 done"), "the undo did not complete")
        assert inventory(lib) == before and inventory(dups) == {}
        errors = console_errors(page)
    assert errors == []


@pytest.mark.slow
def test_a_watchers_new_group_appears_without_a_reload(page, tmp_path):
    lib, db = tmp_path / "lib", tmp_path / "live.db"
    lib.mkdir()
    photo_like(1, (96, 72)).save(lib / "a.png")
    shutil.copy2(lib / "a.png", lib / "a copy.png")
    photo_like(2, (96, 72)).save(lib / "b.png")  # no copy yet
    assert invoke("find", lib, "--db", db, "--processes", 1, "-q").returncode == 0
    with watching(lib, db, "--settle", "0.3"), serving(db) as server:
        page.get(server.url)
        wait(page, lambda d: [sorted(n) for n in shown_groups(d).values()] == [["a copy.png", "a.png"]],
             "the first group is not shown")
        page.execute_script("window.stillTheSamePage = true;")  # a reload would lose it
        shutil.copy(lib / "b.png", lib / "b dropped in.png")
        wait(page, lambda d: any("b dropped in.png" in names for names in shown_groups(d).values()),
             "the watcher's new group never showed")
        assert sorted(map(sorted, shown_groups(page).values())) == [["a copy.png", "a.png"],
                                                                     ["b dropped in.png", "b.png"]]
        assert page.execute_script("return window.stillTheSamePage === true;")
        errors = console_errors(page)
    assert errors == []


def two_groups(tmp_path) -> tuple[Path, Path]:
    """Two groups of two files with the same pixels (a.png and a.bmp, in lib/ and lib/sub/), found."""
    lib, db = tmp_path / "lib", tmp_path / "two.db"
    (lib / "sub").mkdir(parents=True)
    for name in ("a.png", "a.bmp"):
        photo_like(1, (96, 72)).save(lib / name)
        photo_like(2, (96, 72)).save(lib / "sub" / name)
    assert invoke("find", lib, "--db", db, "--processes", 1, "-q").returncode == 0
    return lib, db


def test_read_only_shows_the_groups_and_offers_nothing_to_click(page, tmp_path):
    from selenium.webdriver.common.by import By

    lib, db = two_groups(tmp_path)
    in_index = query(db, "SELECT count(DISTINCT group_id) FROM match_groups")[0][0]
    assert in_index == 2
    with serving(db, "--read-only") as server:
        page.get(server.url)
        wait(page, lambda d: len(shown_groups(d)) == in_index and all_decoded(d, "section.group img"),
             "the groups are not shown")
        visible = [b.text for b in page.find_elements(By.TAG_NAME, "button") if b.is_displayed()]
        assert visible == ["Previous", "Next"]  # no decision, no action, no undo
        assert not page.find_elements(By.CSS_SELECTOR, "input.select")
        assert not page.find_element(By.ID, "actions").is_displayed()
        click(page, lambda d: d.find_element(By.CSS_SELECTOR, "section.group img"), "a thumbnail")  # looking is fine
        wait(page, overlay_open, "the compare overlay did not open")
        errors = console_errors(page)
    assert errors == []


def test_mark_reviewed_then_trash_every_reviewed_group(page, tmp_path):
    from selenium.webdriver.common.by import By

    lib, db = two_groups(tmp_path)
    before = inventory(lib)
    with serving(db) as server:
        page.get(server.url)
        wait(page, lambda d: len(shown_groups(d)) == 2, "the groups are not shown")
        assert "2 left to review (0 marked reviewed" in page.find_element(By.ID, "summary").text
        chosen = group_of(page, "a.png")
        click(page, lambda d: d.find_element(By.CSS_SELECTOR, f"section.group[data-group='{chosen}'] button.review"),
              "mark reviewed")
        wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, f"section.group[data-group='{chosen}'] .badge.reviewed"),
             "the reviewed badge did not appear")
        assert "1 left to review (1 marked reviewed" in page.find_element(By.ID, "summary").text
        assert query(db, "SELECT count(*) FROM reviews") == [(1,)]
        click(page, lambda d: d.find_element(By.ID, "all-reviewed"), "act on every reviewed group")
        click(page, lambda d: d.find_element(By.ID, "trash-selected"), "trash")
        wait(page, lambda d: d.find_elements(By.ID, "carry-out"), "no plan shown")
        assert "1 file" in page.find_element(By.ID, "carry-out").text
        click(page, lambda d: d.find_element(By.ID, "carry-out"), "carry out")
        wait(page, lambda d: "Trash completed" in status_line(d), "the trash did not complete")
        errors = console_errors(page)
    after = inventory(lib)
    assert len(after) == len(before) - 1 and str(lib / "sub" / "a.png") in after  # only the reviewed group's copy
    assert errors == []
