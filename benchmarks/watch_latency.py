#!/usr/bin/env python3
"""The watcher's figures: latency from a new file's close to its match row, burst throughput, idle CPU.

    python benchmarks/watch_latency.py [--stored 10000] [--drops 100] [--burst 5000] [--settle 2]

An index holding --stored vectors (synthetic, straight into SQLite, outside the watched folder)
plus a few real pictures in the watched folder; `imgindex watch` runs as a separate process.
Then: --drops byte copies of a watched picture are written one at a time, and for each the
time from closing the file to its row in `match_pairs` is measured (median, p95); a burst of
--burst files is copied in at once and timed until all are indexed and matched; finally the
watcher's CPU use over 10 idle seconds is read from /proc.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import photo_like  # noqa: E402
from scale import fill  # noqa: E402


def wait(db: Path, sql: str, predicate, args=(), timeout: float = 600.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                value = conn.execute(sql, args).fetchall()
            if predicate(value):
                return value
        except sqlite3.OperationalError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"timed out: {sql}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that have exited, from /proc."""
    with open(f"/proc/{pid}/stat") as fp:
        fields = fp.read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=10_000)
    parser.add_argument("--drops", type=int, default=100)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db, root, staging = tmp / "w.db", tmp / "photos", tmp / "staging"
        root.mkdir()
        staging.mkdir()
        fill(db, args.stored)
        for i in range(5):
            photo_like(i, 1024, 768).save(root / f"seed{i}.jpg", quality=90)
        print(f"index: {args.stored} stored vectors + 5 pictures; generating {args.burst} burst files...", flush=True)
        for i in range(args.burst):
            photo_like(1000 + i % (args.burst // 2 or 1), 320, 240).save(staging / f"burst{i:05d}.jpg", quality=85)
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgindex.cli", "watch", str(root), "--db", str(db), "--settle", str(args.settle),
             "--processes", "2", "--log-file", str(tmp / "watch.log")],
        )
        try:
            wait(db, "SELECT batches FROM watcher", lambda r: r and r[0][0] >= 1)
            latencies = []
            for k in range(args.drops):
                path = root / f"drop{k:04d}.jpg"
                shutil.copyfile(root / f"seed{k % 5}.jpg", path)  # closed when copyfile returns
                closed = time.monotonic()
                wait(db, "SELECT 1 FROM match_pairs WHERE path_a = ? OR path_b = ?", lambda r: bool(r),
                     (str(path), str(path)))
                latencies.append(time.monotonic() - closed)
            latencies.sort()
            p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
            print(f"latency close -> match row over {args.drops} drops (settle {args.settle} s): "
                  f"median {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s", flush=True)
            before = wait(db, "SELECT count(*) FROM images", lambda r: True)[0][0]
            start = time.monotonic()
            for path in sorted(staging.iterdir()):
                shutil.copyfile(path, root / path.name)
            copied = time.monotonic() - start
            wait(db, "SELECT count(*) FROM images", lambda r: r[0][0] == before + args.burst)
            wait(db, "SELECT count(*) FROM match_pairs WHERE path_a LIKE '%burst%'",
                 lambda r: r[0][0] >= args.burst - (args.burst // 2 or 1))
            total = time.monotonic() - start
            batches = wait(db, "SELECT batches FROM watcher", lambda r: True)[0][0]
            print(f"burst of {args.burst} files: copied in {copied:.1f} s, all indexed and matched "
                  f"{total:.1f} s after the first copy ({args.burst / total:.0f} files/s, {batches} batches in all)",
                  flush=True)
            time.sleep(args.settle + 2)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(10)
            idle = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            print(f"idle watcher CPU: {100 * idle:.2f}% of one core over 10 s", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        if proc.returncode != 0:  # figures from a watcher that failed are not figures
            raise SystemExit(f"FAILED: the watcher exited {proc.returncode} (see its log)")


if __name__ == "__main__":
    main()
