#!/usr/bin/env python3
"""Does a memory map help reads of a large index? Reads what searches read, with and without.

    python benchmarks/sqlite_settings.py [--db WORKDIR/windows-1000000-run.db]

Two rounds of each setting, taking turns (the first round warms the page cache): 50,000 random
tensors by id (the exact check's reads), every row of search_keys (a plan's), every image row
(a re-scan's). Run million.py first for the default index.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import WORKDIR  # noqa: E402


def timed(conn: sqlite3.Connection, sql: str, args=()) -> float:
    started = time.perf_counter()
    for _ in conn.execute(sql, args):
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=WORKDIR / "windows-1000000-run.db")
    args = parser.parse_args()
    if not args.db.exists():
        raise SystemExit(f"{args.db} does not exist: run benchmarks/million.py first, or give --db")
    conn = sqlite3.connect(args.db)
    top = conn.execute("SELECT max(id) FROM images").fetchone()[0]
    conn.close()
    ids = np.sort(np.random.default_rng(1).choice(top, min(50_000, top), replace=False) + 1)
    for mmap in (0, 1 << 30, 0, 1 << 30):
        conn = sqlite3.connect(args.db)
        conn.execute(f"PRAGMA mmap_size={mmap}")
        conn.execute("PRAGMA cache_size=-65536")
        tensors = sum(timed(conn, "SELECT tensor FROM tensors WHERE image_id IN (SELECT value FROM json_each(?))",
                            [json.dumps(ids[k : k + 2000].tolist())]) for k in range(0, len(ids), 2000))
        keys = timed(conn, "SELECT image_id, orbits FROM search_keys")
        images = timed(conn, "SELECT id, path, size, mtime_ns FROM images")
        conn.close()
        print(f"mmap_size {mmap >> 20:>5} MB: {len(ids):,} random tensors {tensors:.2f} s; "
              f"every search_keys row {keys:.2f} s; every image row {images:.2f} s", flush=True)


if __name__ == "__main__":
    main()
