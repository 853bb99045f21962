#!/usr/bin/env python3
"""What a re-run costs: nothing changed, and 1% new files, as a fraction of the full run.

    python benchmarks/incremental.py --n 5000 20000 [--similarity similar]

For each size: a working copy of the cached photo-like corpus (hard links, so nothing is
copied), `imgindex find` on a fresh database (the full run), the same command again with
nothing changed, then again after 1% new pictures were added. Also checks that the
incremental result equals a full search of the same index (pairs compared as sets).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import corpus, measure, photo_like, warm  # noqa: E402


def find(folder: Path, db: Path, similarity: str, *extra: str):
    cmd = [sys.executable, "-m", "imgindex.cli", "find", str(folder), "--db", str(db), "--processes", "2",
           "--similarity", similarity, "--format", "csv", "-o", os.devnull, "-q", *extra]
    run = measure(cmd)
    if run.returncode != 0:
        raise SystemExit(run.stderr)
    return run


def latest_pairs(db: Path) -> set:
    conn = sqlite3.connect(db)
    return set(conn.execute("SELECT image_a, image_b, mse, rotation, mirrored FROM match_pairs"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[5000])
    parser.add_argument("--similarity", default="similar")
    args = parser.parse_args()
    rows = []
    for n in args.n:
        source = corpus(n)
        warm(source)  # the full run reads from the page cache, as the re-runs do
        with tempfile.TemporaryDirectory() as tmp:
            work, db = Path(tmp) / "photos", Path(tmp) / "i.db"
            work.mkdir()
            for path in source.iterdir():
                os.link(path, work / path.name)
            full = find(work, db, args.similarity)
            same = find(work, db, args.similarity)
            for k in range(max(1, n // 100)):
                photo_like(10_000_000 + k).save(work / f"NEW_{k:05d}.jpg", quality=92)
            plus = find(work, db, args.similarity)
            incremental = latest_pairs(db)
            find(work, db, args.similarity, "--full")
            identical = incremental == latest_pairs(db)
        rows.append((n, full.seconds, same.seconds, plus.seconds, identical))
        print(f"{n}: full {full.seconds:.2f} s, unchanged {same.seconds:.2f} s, +1% {plus.seconds:.2f} s, "
              f"incremental == full search: {identical}", flush=True)
    print()
    print(f"{'images':>7} {'full s':>8} {'unchanged s':>12} {'% of full':>10} {'+1% s':>7} {'% of full':>10} {'same result':>12}")
    for n, full, same, plus, identical in rows:
        print(f"{n:>7} {full:>8.2f} {same:>12.2f} {100 * same / full:>9.1f}% {plus:>7.2f} {100 * plus / full:>9.1f}%"
              f" {str(identical):>12}")
    print("times are whole `imgindex find` commands (Python start-up and imports included), processes=2.")


if __name__ == "__main__":
    main()
