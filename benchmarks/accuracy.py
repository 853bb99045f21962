#!/usr/bin/env python3
"""How well MSE finds real copies: pair precision and recall per kind of copy, over thresholds.

    python benchmarks/accuracy.py [--corpus DIR] [--seed 0] [--thresholds 0 1 2 5 10 20 50 100 200]

Builds a test set with known truth from a folder of distinct photos with
shared/corpora/make_variants.py (byte copies, JPEG re-encodes, PNG<->JPEG, resizes, rotations,
flips, crops, brightness, noise, EXIF-orientation changes, grayscale, distractors), indexes it
with imgindex, searches once with the widest threshold (rotate on, mirror off, same_dim off),
and reads every narrower threshold from those pairs (a pair found at t is found at any t' >= t
with the same MSE). A pair is true when both files share a group in truth.csv.

Recall of a kind = found (original, copy of that kind) pairs / all such pairs; with same_dim on,
resized copies cannot be found (their dimensions differ), which the table shows. Pair precision
= true pairs / pairs found, over everything. Also printed: the MSE of true pairs per kind
(median, p95, max) and the smallest MSE between two different pictures.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

import imgindex

HERE = Path(__file__).resolve()
SHARED = HERE.parents[2] / "shared" / "corpora"


def build_set(corpus: Path, out: Path, seed: int, make_variants: Path) -> None:
    subprocess.run([sys.executable, str(make_variants), "--src", str(corpus), "--out", str(out), "--seed", str(seed),
                    "--per-original", "0", "--no-measure"], check=True, capture_output=True)


def load_truth(folder: Path) -> dict[str, tuple[str, str]]:
    with open(folder / "truth.csv") as fp:
        return {str((folder / r["path"]).resolve()): (r["group_id"], r["transform"]) for r in csv.DictReader(fp)}


def all_pairs(folder: Path, db: Path, widest: float, processes: int):
    """Every pair within ``widest`` (rotate on, mirror off, same_dim off), with both images' dimensions."""
    with imgindex.Index(db) as index:
        index.scan([folder], processes=processes)
        index.search(similarity=widest, same_dim=False, processes=processes, full=True)
        dims = {p: tuple(sorted((w, h))) for p, w, h in index.db.execute("SELECT path, width, height FROM images")}
        pairs = [(a, b, m) for a, b, m in index.db.execute("SELECT path_a, path_b, mse FROM match_pairs")]
    return pairs, dims


def kind_of(pair_a, pair_b, truth) -> str | None:
    """The transform of a true (original, copy) pair, or None for pairs between two copies."""
    (ga, ta), (gb, tb) = truth[pair_a], truth[pair_b]
    if ga != gb:
        return None
    if ta == "original":
        return tb
    if tb == "original":
        return ta
    return None


def report(truth, pairs, dims, thresholds) -> None:
    originals = {g: p for p, (g, t) in truth.items() if t == "original"}
    kinds = sorted({t for g, t in truth.values() if t not in ("original", "distractor")})
    wanted = defaultdict(set)  # kind -> set of (original, copy)
    for path, (g, t) in truth.items():
        if t not in ("original", "distractor") and g in originals:
            wanted[t].add(frozenset((originals[g], path)))
    mse_true = defaultdict(list)
    best_false = float("inf")
    for a, b, m in pairs:
        k = kind_of(a, b, truth)
        if k is not None:
            mse_true[k].append(m)
        elif truth[a][0] != truth[b][0]:
            best_false = min(best_false, m)
    print("MSE of (original, copy) pairs, per kind, among pairs up to the widest threshold:")
    for k in kinds:
        v = np.array(mse_true[k]) if mse_true[k] else np.array([np.nan])
        print(f"  {k:<17} found {len(mse_true[k]):>4}/{len(wanted[k]):<4} median {np.median(v):8.2f}"
              f"  p95 {np.percentile(v, 95):8.2f}  max {np.max(v):8.2f}")
    print(f"smallest MSE between two different pictures: {best_false:.2f}")
    print()
    header = f"{'threshold':>9} {'same_dim':>8} {'precision':>9} {'pairs':>6} " + " ".join(f"{k[:9]:>9}" for k in kinds)
    print("recall per kind of copy, and overall pair precision:")
    print(header)
    for t in thresholds:
        for same_dim in (True, False):
            found = [(a, b) for a, b, m in pairs if m <= t and (not same_dim or dims[a] == dims[b])]
            true = sum(truth[a][0] == truth[b][0] for a, b in found)
            precision = true / len(found) if found else 1.0
            got = {frozenset(p) for p in found}
            recalls = " ".join(f"{len(wanted[k] & got) / len(wanted[k]):>9.3f}" for k in kinds)
            print(f"{t:>9g} {str(same_dim):>8} {precision:>9.4f} {len(found):>6} {recalls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "real-photos")
    parser.add_argument("--make-variants", type=Path, default=SHARED / "make_variants.py")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0, 1, 2, 5, 10, 20, 50, 100, 200])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep the generated set here (default: a temp dir)")
    args = parser.parse_args()
    if not args.corpus.is_dir() or not args.make_variants.exists():
        print(f"no corpus at {args.corpus} (or no {args.make_variants}): nothing to measure")
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        folder = work / f"variants-seed{args.seed}"
        if not (folder / "truth.csv").exists():
            print(f"building the variant set in {folder} ...", flush=True)
            build_set(args.corpus, folder, args.seed, args.make_variants)
        truth = load_truth(folder)
        pairs, dims = all_pairs(folder, Path(tmp) / "accuracy.db", max(args.thresholds), args.processes)
        print(f"{len(truth)} files, {len(pairs)} pairs within MSE {max(args.thresholds):g} "
              f"(rotate on, mirror off); preset 'similar' = {imgindex.compare.SIMILARITY_PRESETS['similar']:g}")
        report(truth, pairs, dims, sorted(set(args.thresholds)))


if __name__ == "__main__":
    main()
