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
import sys
import tempfile
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
    parser.add_argument("--thumb-size", type=int, default=256)
    args = parser.parse_args()
    print(f"{'groups':>7} {'images':>7} {'report s':>9} {'MB':>7} {'peak MB':>8}  (thumb {args.thumb_size} px)")
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
            out = Path(tmp) / "report.html"
            run = imgindex("report", "--db", str(db), "-o", str(out), "--thumb-size", str(args.thumb_size), "-q")
            print(f"{n:>7,} {3 * n:>7,} {run.seconds:>9.1f} {out.stat().st_size / 1e6:>7.1f} {run.peak_rss_mb:>8.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
