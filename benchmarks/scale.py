#!/usr/bin/env python3
"""Search at scale: 100k stored vectors, time and peak memory of 'duplicates' and 'similar'.

    python benchmarks/scale.py [--n 100000] [--processes 2] [--chunksize N]

Synthetic 50x50 tensors go straight into a fresh index (no decoding: this measures the
comparer): smooth random pictures, with 1% near-copies (every value within +-2) and 0.5% exact
copies, all of one pixel size, so every pair is a candidate. `imgindex search --full` then runs
as a separate process; its wall time and the peak RSS summed over it and its workers are
reported, with the pairs found (which must equal the copies planted).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import measure  # noqa: E402

import imgindex  # noqa: E402
from imgindex.scan.decode import DECODER  # noqa: E402


def fill(db: Path, n: int, seed: int = 0) -> tuple[int, int]:
    """n tensors; returns (exact copies, near copies) planted."""
    rng = np.random.default_rng(seed)
    exact = near = 0
    now = datetime.now(timezone.utc).isoformat()
    with imgindex.Index(db) as index:
        index.db.execute("INSERT OR REPLACE INTO settings VALUES ('px_size', '50')")
        with index.db.atomic():
            for start in range(0, n, 1000):
                k = min(1000, n - start)
                base = rng.integers(0, 256, (k, 5, 5, 3)).astype(np.float32)
                big = np.repeat(np.repeat(base, 10, axis=1), 10, axis=2) + rng.normal(0, 8, (k, 50, 50, 3))
                tensors = np.clip(big, 0, 255).astype(np.uint8)
                for j in range(0, k - 1, 100):  # 1% near copies
                    tensors[j + 1] = np.clip(tensors[j].astype(np.int16) + rng.integers(-2, 3, (50, 50, 3)), 0, 255)
                    near += 1
                for j in range(50, k - 1, 200):  # 0.5% exact copies
                    tensors[j + 1] = tensors[j]
                    exact += 1
                rows = [(f"/synthetic/{start + j:07d}.jpg", "/synthetic", 1000, 0, 1024, 768, "JPEG",
                         f"hash{start + j}", 50, DECODER, now) for j in range(k)]
                first = index.db.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()[0] + 1
                index.db.conn.executemany(
                    "INSERT INTO images (path, folder, size, mtime_ns, width, height, format, content_hash, px_size,"
                    " decoder, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                index.db.conn.executemany("INSERT INTO tensors VALUES (?, 50, ?)",
                                          [(first + j, tensors[j].tobytes()) for j in range(k)])
    return exact, near


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--chunksize", type=int)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "scale.db"
        exact, near = fill(db, args.n)
        print(f"{args.n} vectors stored ({exact} exact copies, {near} near copies planted)", flush=True)
        for similarity in ("duplicates", "similar"):
            cmd = [sys.executable, "-m", "imgindex.cli", "search", "--db", str(db), "--similarity", similarity,
                   "--full", "--save-profile", "--processes", str(args.processes), "--format", "csv", "-o", "/dev/null"]
            if args.chunksize:
                cmd += ["--chunksize", str(args.chunksize)]
            run = measure(cmd)
            print(f"  {similarity:<10} {run.seconds:8.1f} s   peak RSS {run.peak_rss_mb:7.0f} MB (all processes)   "
                  f"{run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}", flush=True)


if __name__ == "__main__":
    main()
