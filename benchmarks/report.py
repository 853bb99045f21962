#!/usr/bin/env python3
"""What the HTML report costs: time and file size for 1,000 and 10,000 groups.

    python benchmarks/report.py --groups 1000 10000 [--thumb-size 256]

For each size: the cached photo-like corpus (1024x768 JPEGs), each picture with a byte copy
and a re-encoded copy (quality 70) in other folders, so every group has three images, two
distinct contents, and its keeper; `imgindex find --similarity similar`, then `imgindex
report`, timed as a whole command (Python start-up included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import corpus, measure  # noqa: E402


def imgindex(*args: str):
    run = measure([sys.executable, "-m", "imgindex.cli", *args])
    if run.returncode != 0:
        raise SystemExit(f"imgindex {' '.join(args)} failed:\n{run.stderr}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[1000])
    parser.add_argument("--thumb-size", type=int, nargs="+", default=[256])
    parser.add_argument("--browser", action="store_true", help="also time loading it in headless Chromium")
    args = parser.parse_args()
    print(f"{'groups':>7} {'images':>7} {'thumb':>5} {'report s':>9} {'MB':>7} {'peak MB':>8} {'load s':>7}"
          f" {'next page s':>11}")
    for n in args.groups:
        source = corpus(n)
        with tempfile.TemporaryDirectory() as tmp:
            root, db = Path(tmp) / "photos", Path(tmp) / "i.db"
            for folder in ("camera", "backup", "web"):
                (root / folder).mkdir(parents=True)
            for path in sorted(source.iterdir())[:n]:
                os.link(path, root / "camera" / path.name)
                os.link(path, root / "backup" / path.name)
                with Image.open(path) as im:
                    im.save(root / "web" / path.name, quality=70)
            imgindex("find", str(root), "--db", str(db), "--similarity", "similar", "-q", "--format", "csv",
                     "-o", os.devnull)
            for size in args.thumb_size:
                out = Path(tmp) / f"report-{size}.html"
                run = imgindex("report", "--db", str(db), "-o", str(out), "--thumb-size", str(size), "-q")
                load, turn = in_browser(out, Path(tmp)) if args.browser else (float("nan"), float("nan"))
                print(f"{n:>7,} {3 * n:>7,} {size:>5} {run.seconds:>9.1f} {out.stat().st_size / 1e6:>7.1f}"
                      f" {run.peak_rss_mb:>8.0f} {load:>7.2f} {turn:>11.2f}", flush=True)


def in_browser(page: Path, tmp: Path) -> tuple[float, float]:
    """Seconds until the first groups are drawn, and to draw the next page, in headless Chromium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 f"--user-data-dir={tmp / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    try:
        start = time.perf_counter()
        driver.get(page.as_uri())  # returns after the load event: the script has drawn page 1
        assert driver.find_elements(By.CSS_SELECTOR, ".group")
        load = time.perf_counter() - start
        start = time.perf_counter()
        driver.find_elements(By.CSS_SELECTOR, "button.next")[0].click()
        while driver.execute_script("return document.body.dataset.page") != "1":
            time.sleep(0.005)
        driver.execute_script("return document.images.length")
        return load, time.perf_counter() - start
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
