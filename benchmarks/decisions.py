#!/usr/bin/env python3
"""What review decisions cost a search: 20k images with 2,000 decisions against the same index without.

    python benchmarks/decisions.py [--n 20000] [--decisions 2000] [--cache DIR] [--repeat 3]

The index: n synthetic 50x50 tensors stored without decoding (as in scale.py), one in ten with
a near copy and one in twenty with two (every value within +-2, so 'similar' finds them: about
n/5 pairs), spread over folders of about 100 images that exist on disk (empty, so that they can
be reference folders) under one root recorded as scanned. A full search is run on it, then
copy A stays as it is and copy B gets the decisions, one call each as a reviewer makes them:
'not duplicates' for pairs the search found (``Index.ignore``), pins (``Index.keep``) and a few
reference folders (``Index.add_reference``); each call re-groups the latest search in place.
Both copies are cached in DIR (default $IMGINDEX_BENCH_DIR/decisions) with how long recording took.

Each repeat starts from fresh copies of A and B and times, on each in turn (A first in even
repeats, B first in odd ones), with processes=2: a full search, an incremental search after
1,000 new images (near copies among them), and an incremental search with nothing new. The
medians, B/A and the pair and group counts are printed. Exactness is checked after every
search: B's match_pairs must be A's minus the pairs decided 'not duplicates' and those with both
images in reference folders; the script exits non-zero when not, or when a search fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import WORKDIR  # noqa: E402
from _vectors import PX, insert_images, near_copy, pictures  # noqa: E402

import imgindex  # noqa: E402
from imgindex.types import SearchReport  # noqa: E402

BUILD = 1  # bump when the corpus or the decisions change: the cache is keyed by it
NEW_IMAGES = 1000
PROCESSES = 2
SIMILARITY = "similar"
STEPS = ("full search", f"incremental, +{NEW_IMAGES} images", "incremental, nothing new")


# ---------------------------------------------------------------- the synthetic corpus

def fill(db: Path, root: Path, n: int, seed: int = 0) -> list[Path]:
    """n images in folders of about 100 under ``root`` (made on disk, empty); returns the folders."""
    rng = np.random.default_rng(seed)
    folders = [root / f"f{k:03d}" for k in range(max(1, n // 100))]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).isoformat()
    with imgindex.Index(db) as index:
        index.db.execute("INSERT OR REPLACE INTO settings VALUES ('px_size', ?)", [str(PX)])
        # add_reference wants its folders under a scanned root: the scan this index stands for
        index.db.execute("INSERT INTO scans (started_at, finished_at, status, roots, options) VALUES (?, ?, ?, ?, ?)",
                         [now, now, "completed", json.dumps([str(root)]), json.dumps({"synthetic": True})])
        for start in range(0, n, 1000):
            k = min(1000, n - start)
            tensors = pictures(rng, k)
            for j in range(0, k - 1, 10):  # a pair in every ten images, a triple in every twenty
                tensors[j + 1] = near_copy(rng, tensors[j])
                if j % 20 == 0 and j + 2 < k:
                    tensors[j + 2] = near_copy(rng, tensors[j])
            where = rng.integers(0, len(folders), k)  # copies land in other folders than their originals
            insert_images(index, [str(folders[w] / f"IMG_{start + j:06d}.jpg") for j, w in enumerate(where)], tensors)
    return folders


def add_new_images(db: Path, root: Path, seed: int = 1) -> None:
    """NEW_IMAGES more, the same on every copy: one in five a near copy of an indexed image, one in
    ten a near copy of another new one."""
    rng = np.random.default_rng(seed)
    with imgindex.Index(db) as index:
        old = np.array([r[0] for r in index.db.execute("SELECT id FROM images ORDER BY id")], dtype=np.int64)
        tensors = pictures(rng, NEW_IMAGES)
        for j in range(0, NEW_IMAGES, 5):
            (blob,) = index.db.execute("SELECT tensor FROM tensors WHERE image_id = ?",
                                       [int(rng.choice(old))]).fetchone()
            tensors[j] = near_copy(rng, np.frombuffer(blob, dtype=np.uint8).reshape(PX, PX, 3))
        for j in range(2, NEW_IMAGES - 1, 10):
            tensors[j + 1] = near_copy(rng, tensors[j])
        insert_images(index, [str(root / "new" / f"NEW_{k:05d}.jpg") for k in range(NEW_IMAGES)], tensors)


# ---------------------------------------------------------------- the decisions

def split(decisions: int) -> tuple[int, int, int]:
    """(not duplicates, pins, reference folders) making up ``decisions``."""
    references = max(1, decisions // 500)
    pins = decisions // 5
    return decisions - pins - references, pins, references


def record_decisions(db: Path, folders: list[Path], decisions: int, seed: int = 2) -> dict:
    """Record the decisions on ``db``, one API call each; what was decided and how long each kind took."""
    rng = np.random.default_rng(seed)
    n_ignore, n_keep, n_reference = split(decisions)
    with imgindex.Index(db) as index:
        found = sorted(index.db.execute("SELECT path_a, path_b FROM match_pairs").fetchall())
        grouped = sorted(r[0] for r in index.db.execute("SELECT path FROM match_groups"))
        if len(found) < n_ignore or len(grouped) < n_keep or len(folders) < n_reference:
            raise SystemExit(f"the index is too small for {decisions} decisions: {len(found)} pairs,"
                             f" {len(grouped)} grouped images, {len(folders)} folders")
        ignored = [found[i] for i in sorted(rng.choice(len(found), n_ignore, replace=False))]
        pinned = [grouped[i] for i in sorted(rng.choice(len(grouped), n_keep, replace=False))]
        references = [str(folders[i]) for i in sorted(rng.choice(len(folders), n_reference, replace=False))]
        seconds = {}
        for kind, items, call in (("not duplicates", ignored, lambda pair: index.ignore(list(pair))),
                                  ("pins", pinned, lambda path: index.keep([path])),
                                  ("reference folders", references, lambda folder: index.add_reference([folder]))):
            start = time.perf_counter()
            for item in items:
                call(item)
            seconds[kind] = time.perf_counter() - start
        in_force = dict(Counter(d.kind for d in index.decisions()))
    return {"ignored": ignored, "pinned": pinned, "references": references, "seconds": seconds,
            "in_force": in_force, "pairs_before": len(found)}


# ---------------------------------------------------------------- building and caching

def templates(cache: Path, n: int, decisions: int) -> tuple[Path, Path, dict]:
    """(A, B, what was recorded on B): built once, then reused from ``cache``."""
    place = cache / f"build{BUILD}-n{n}-d{decisions}"
    a, b, info_file = place / "a.db", place / "b.db", place / "build.json"
    if info_file.exists() and a.exists() and b.exists():
        info = json.loads(info_file.read_text())
        print(f"reusing {place} (built {info['built_at']})", flush=True)
        return a, b, info
    place.mkdir(parents=True, exist_ok=True)
    for stale in place.glob("*.db*"):
        stale.unlink()
    print(f"building {n} images in {place} (cached for later runs)...", flush=True)
    start = time.perf_counter()
    folders = fill(a, place / "photos", n)
    print(f"  stored in {time.perf_counter() - start:.1f} s; first full search...", flush=True)
    with imgindex.Index(a) as index:
        report = index.search(similarity=SIMILARITY, full=True, processes=PROCESSES)
    print(f"  {report.pairs} pairs, {report.groups} groups in {report.duration:.1f} s", flush=True)
    copy_db(a, b)
    print(f"  recording {decisions} decisions on B, one call each...", flush=True)
    info = record_decisions(b, folders, decisions)
    info.update(built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), n=n, root=str(place / "photos"),
                imgindex_commit=git_commit())
    info_file.write_text(json.dumps(info))
    return a, b, info


def copy_db(source: Path, target: Path) -> None:
    """A consistent copy (the SQLite backup API: whatever is still in the WAL comes along)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def git_commit() -> str:
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "imgindex", "migrations"],
                               cwd=here, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in imgindex/ or migrations/" if dirty else "")


# ---------------------------------------------------------------- measuring and checking

def timed_search(db: Path, label: str, **options) -> tuple[float, SearchReport]:
    """Seconds of one ``Index.search`` call (opening the index not included), and its report."""
    try:
        with imgindex.Index(db) as index:
            start = time.perf_counter()
            report = index.search(similarity=SIMILARITY, processes=PROCESSES, **options)
            seconds = time.perf_counter() - start
    except Exception:
        traceback.print_exc()
        raise SystemExit(f"FAILED: {label} on {db}") from None
    return seconds, report


def reported(db: Path) -> tuple[set[frozenset[str]], set[str], int]:
    """(match_pairs as path pairs, paths in reference folders, groups) of the latest search."""
    with closing(sqlite3.connect(db)) as conn:
        pairs = {frozenset(r) for r in conn.execute("SELECT path_a, path_b FROM match_pairs")}
        refs = {r[0] for r in conn.execute("SELECT path FROM reference_images")}
        groups = conn.execute("SELECT count(DISTINCT group_id) FROM match_groups").fetchone()[0]
    return pairs, refs, groups


def check(label: str, a: Path, b: Path, ignored: set[frozenset[str]], reports: dict) -> tuple[int, int, int, int]:
    """B's reported pairs are A's minus the decided ones, and each SearchReport's counts are its views'.

    Returns (pairs A, pairs B, groups A, groups B); exits non-zero on any difference.
    """
    pairs_a, _, groups_a = reported(a)
    pairs_b, refs_b, groups_b = reported(b)
    expected = {p for p in pairs_a - ignored if not p <= refs_b}
    problems = []
    if pairs_b != expected:
        problems.append(f"B reports {len(pairs_b - expected)} pairs it should not and misses {len(expected - pairs_b)}"
                        f" (A: {len(pairs_a)}, expected on B: {len(expected)}, B: {len(pairs_b)})")
    for name, pairs, groups in (("A", pairs_a, groups_a), ("B", pairs_b, groups_b)):
        report = reports[name]
        if (report.pairs, report.groups) != (len(pairs), groups):
            problems.append(f"{name}'s SearchReport says {report.pairs} pairs, {report.groups} groups; its views"
                            f" show {len(pairs)}, {groups}")
    if problems:
        raise SystemExit(f"FAILED exactness after {label}:\n  " + "\n  ".join(problems))
    return len(pairs_a), len(pairs_b), groups_a, groups_b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="images in the index (default 20000)")
    parser.add_argument("--decisions", type=int, default=2000, help="decisions recorded on B (default 2000)")
    parser.add_argument("--cache", type=Path, default=WORKDIR / "decisions", help="where A and B are kept")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each step (default 3)")
    args = parser.parse_args()
    if args.n < 100 or args.decisions < 3 or args.repeat < 1:
        parser.error("--n >= 100, --decisions >= 3 and --repeat >= 1")

    print("$ python " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), {platform.machine()},"
          f" Python {platform.python_version()}, imgindex {git_commit()}; searches with processes={PROCESSES},"
          f" similarity={SIMILARITY!r}")
    cache = args.cache.expanduser().absolute()
    template_a, template_b, info = templates(cache, args.n, args.decisions)
    ignored = {frozenset(p) for p in info["ignored"]}
    print(f"B's decisions: {len(info['ignored'])} not duplicates (of the {info['pairs_before']} pairs found),"
          f" {len(info['pinned'])} pins, {len(info['references'])} reference folders; in force: {info['in_force']}")
    for kind, seconds in info["seconds"].items():
        count = {"not duplicates": len(info["ignored"]), "pins": len(info["pinned"]),
                 "reference folders": len(info["references"])}[kind]
        print(f"  recording {count:>5} {kind:<18} {seconds:8.1f} s   {1000 * seconds / max(count, 1):7.1f} ms each"
              " (one API call each, re-grouping the latest search)")
    total = sum(info["seconds"].values())
    print(f"  recording all {args.decisions} decisions {total:.1f} s, {1000 * total / args.decisions:.1f} ms each"
          f" (measured when the cache was built, {info['built_at']}, imgindex {info['imgindex_commit']})")

    times = {step: {"A": [], "B": []} for step in STEPS}
    counts, how = {}, {}
    root = Path(info["root"])
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        for r in range(args.repeat):
            order = ("A", "B") if r % 2 == 0 else ("B", "A")
            work = {"A": Path(tmp) / f"a{r}.db", "B": Path(tmp) / f"b{r}.db"}
            copy_db(template_a, work["A"])
            copy_db(template_b, work["B"])
            for step in STEPS:
                if step == STEPS[1]:
                    for name in order:
                        add_new_images(work[name], root)
                reports = {}
                for name in order:
                    seconds, reports[name] = timed_search(work[name], f"{step} (repeat {r + 1})",
                                                          full=step == STEPS[0])
                    times[step][name].append(seconds)
                counts[step] = check(f"{step} (repeat {r + 1})", work["A"], work["B"], ignored, reports)
                how[step] = {name: f"{rep.algorithm}, {rep.workers} workers, {rep.new_images} new"
                             for name, rep in reports.items()}
                print(f"  repeat {r + 1}, {step:<28} A {times[step]['A'][-1]:7.2f} s   B {times[step]['B'][-1]:7.2f} s",
                      flush=True)
            for path in work.values():
                for leftover in path.parent.glob(path.name + "*"):
                    leftover.unlink()

    print()
    print(f"{args.n} images, B with {args.decisions} decisions; median of {args.repeat} (seconds, in-process"
          f" Index.search, processes={PROCESSES}):")
    print(f"{'step':<28} {'A s':>8} {'B s':>8} {'B/A':>6} {'within 10%':>11} {'pairs A':>8} {'pairs B':>8}"
          f" {'groups A':>9} {'groups B':>9}")
    for step in STEPS:
        a, b = statistics.median(times[step]["A"]), statistics.median(times[step]["B"])
        pairs_a, pairs_b, groups_a, groups_b = counts[step]
        print(f"{step:<28} {a:>8.2f} {b:>8.2f} {b / a:>6.2f} {'yes' if b <= 1.1 * a else 'NO':>11} {pairs_a:>8}"
              f" {pairs_b:>8} {groups_a:>9} {groups_b:>9}")
    for step in STEPS:
        print(f"  {step}: A {how[step]['A']}; B {how[step]['B']}")
    print("exactness: after every search, B's match_pairs = A's minus the pairs decided 'not duplicates' and"
          " those with both images in reference folders: OK")


if __name__ == "__main__":
    main()
