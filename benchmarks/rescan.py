#!/usr/bin/env python3
"""Re-scanning a million unchanged files: what the walk and the diff cost on a real tree.

    python benchmarks/rescan.py [--n 1000000] [--processes 2]

A tree of n small PNG files (1,000 per folder; 1,000 distinct pictures, the rest byte copies of
them, so the first scan reads every file but decodes only a thousand) is made once and cached in
WORKDIR. `imgindex scan` runs on it into a fresh index (the first scan; kept for later runs,
`--fresh` makes it again), then again with nothing changed (the re-scan: a walk, a stat per
file, and a diff against the index). Both are whole commands, timed with their peak memory.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import WORKDIR, measure, photo_like  # noqa: E402

PER_FOLDER = 1000


def tree(n: int) -> Path:
    root = WORKDIR / f"tree-{n}"
    done = root / ".complete"
    if done.exists():
        return root
    pictures = []
    for k in range(1000):
        path = WORKDIR / "tree-pictures" / f"{k:04d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            photo_like(k, 24, 18).save(path)
        pictures.append(path.read_bytes())
    for i in range(n):
        folder = root / f"dir{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
            print(f"  making the tree: {i:,} of {n:,} files", end="\r", flush=True)
        (folder / f"img{i:07d}.png").write_bytes(pictures[i % len(pictures)])
    done.touch()
    print()
    return root


def scanned(db: Path) -> bool:
    """Has a scan into ``db`` completed (so the first scan can be skipped)?"""
    if not db.exists():
        return False
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM scans WHERE status = 'completed'").fetchone()[0] > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="scan into a fresh index even if one is cached")
    args = parser.parse_args()
    root = tree(args.n)
    db = WORKDIR / f"tree-{args.n}.db"
    cmd = [sys.executable, "-m", "imgindex.cli", "scan", str(root), "--db", str(db), "--processes",
           str(args.processes), "-q"]
    if args.fresh or not scanned(db):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        first = measure(cmd)
        print(f"{args.n:,} files: first scan {first.seconds:.0f} s (peak RSS {first.peak_rss_mb:.0f} MB); "
              f"index {db.stat().st_size / args.n:,.0f} bytes a file")
    else:
        print(f"{args.n:,} files, scanned before into {db} (--fresh scans again)")
    again = measure(cmd)
    print(f"  re-scan, nothing changed: {again.seconds:.1f} s (peak RSS {again.peak_rss_mb:.0f} MB)")


if __name__ == "__main__":
    main()
