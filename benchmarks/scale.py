#!/usr/bin/env python3
"""Search at scale: 100k stored vectors, time and peak memory of 'duplicates' and 'similar'.

    python benchmarks/scale.py [--n 100000] [--processes 2] [--chunksize N] [--repeat 3] [--db INDEX]

Synthetic 50x50 tensors go straight into a fresh index (no decoding: this measures the
comparer): smooth random pictures, with 1% near-copies (every value within +-2) and 0.5% exact
copies, all of one pixel size, so every pair is a candidate. `imgindex search --full` then runs
as a separate process; its wall time and the peak RSS summed over it and its workers are
reported, with the pairs found (which must equal the copies planted).

MSE 6 alone (the threshold as a number: pixels, no motion check) runs beside 'similar' with pixels
alone (and its motion check, ``compare.motion``) and with its default signals (pixels, tone, rank,
trimmed: ``compare.signals``), alternating ``--repeat`` times; medians and the ratios of the two
'similar' runs to MSE alone are printed (the issue's bar: the signals cost at most 1.5x MSE alone). ``--db`` searches a copy of an
existing index instead (say one of real-photo windows from ``benchmarks/million.py``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
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


# MSE alone is the threshold as a number (no motion check, as difPy); 'similar' with pixels alone has the check
RUNS = (("duplicates", "pixels"), ("6", "pixels"), ("similar", "pixels"), ("similar", "default"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--chunksize", type=int)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each search, alternating (medians shown)")
    parser.add_argument("--db", type=Path, help="search a copy of this index instead of synthetic vectors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "scale.db"
        if args.db:
            shutil.copyfile(args.db, db)
            print(f"a copy of {args.db}", flush=True)
        else:
            exact, near = fill(db, args.n)
            print(f"{args.n} vectors stored ({exact} exact copies, {near} near copies planted)", flush=True)
        times: dict[tuple[str, str], list] = {run: [] for run in RUNS}
        for _ in range(args.repeat):
            for similarity, signals in RUNS:
                times[similarity, signals].append(search(db, similarity, signals, args))
        for (similarity, signals), runs in times.items():
            seconds = statistics.median(r.seconds for r in runs)
            peak = max(r.peak_rss_mb for r in runs)
            print(f"  {similarity:<10} {signals:<8} {seconds:8.1f} s (median of {len(runs)})   peak RSS {peak:7.0f} MB"
                  f" (all processes)   {last_line(runs[-1])}", flush=True)
        alone = statistics.median(r.seconds for r in times["6", "pixels"])
        for signals, label in (("default", "its default signals"), ("pixels", "pixels and the motion check")):
            ratio = statistics.median(r.seconds for r in times["similar", signals]) / alone
            print(f"  'similar' with {label} / MSE 6 alone: {ratio:.2f}x", flush=True)


def search(db: Path, similarity: str, signals: str, args):
    """One full search as its own process, timed; fails loudly if it fails."""
    cmd = [sys.executable, "-m", "imgindex.cli", "search", "--db", str(db), "--similarity", similarity, "--signals",
           signals, "--full", "--save-profile", "--processes", str(args.processes), "--format", "csv",
           "-o", "/dev/null"]
    if args.chunksize:
        cmd += ["--chunksize", str(args.chunksize)]
    run = measure(cmd)
    if run.returncode != 0:
        sys.exit(f"search failed ({run.returncode}): {run.stderr}")
    return run


def last_line(run) -> str:
    return run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ""


if __name__ == "__main__":
    main()
