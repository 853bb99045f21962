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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import measure  # noqa: E402
from _vectors import insert_images, near_copy, pictures  # noqa: E402

import imgindex  # noqa: E402


def fill(db: Path, n: int, seed: int = 0) -> tuple[int, int]:
    """n tensors; returns (exact copies, near copies) planted."""
    rng = np.random.default_rng(seed)
    exact = near = 0
    with imgindex.Index(db) as index:
        for start in range(0, n, 1000):
            k = min(1000, n - start)
            tensors = pictures(rng, k)
            for j in range(0, k - 1, 100):  # 1% near copies
                tensors[j + 1] = near_copy(rng, tensors[j])
                near += 1
            for j in range(50, k - 1, 200):  # 0.5% exact copies
                tensors[j + 1] = tensors[j]
                exact += 1
            insert_images(index, [f"/synthetic/{start + j:07d}.jpg" for j in range(k)], tensors)
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
