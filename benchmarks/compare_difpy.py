#!/usr/bin/env python3
"""imgindex against difPy 4.2.1, side by side, on the same files, in one run.

    python benchmarks/compare_difpy.py          # README's table: 1k duplicates, 5k similar, 500 12-MP duplicates
    python benchmarks/compare_difpy.py --n 1000 5000 20000 [--corpus DIR] [--difpy-max 5000]
    python benchmarks/compare_difpy.py --n 500 --size 4000 --similarity duplicates   # 12-MP JPEGs

For each size: a deterministic photo-like corpus of 1024-px JPEGs (5% byte copies, 5%
re-encoded near-copies; cached under $IMGINDEX_BENCH_DIR, default /tmp/imgindex-bench), or your
own folder with --corpus, read once first (a warm page cache for both tools). Then difPy (build + search) and `imgindex find` (fresh database, a
cold run) in turn, both with processes=2, for 'duplicates' and 'similar'. Reported: wall time,
peak RSS summed over every process of the run (sampled from /proc), files found as lower
quality, the ratio difPy / imgindex, and where imgindex's time went (walk, hash, decode, keys,
write, search, start-up: the timings its index records for the run). difPy is installed into
its own virtualenv on first use. Above --difpy-max images difPy would take hours: it runs on the first --difpy-max images
and its time is extrapolated (build linearly, search quadratically), which the output says.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import WORKDIR, corpus, measure, warm  # noqa: E402

DIFPY_VERSION = "4.2.1"
DIFPY_RUNNER = """
import json, sys, time
import difPy

if __name__ == "__main__":
    folder, similarity = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    dif = difPy.build(folder, processes=2, show_progress=False)
    t1 = time.perf_counter()
    se = difPy.search(dif, similarity=similarity, processes=2, show_progress=False)
    t2 = time.perf_counter()
    print(json.dumps({"build": t1 - t0, "search": t2 - t1, "groups": len(se.result),
                      "lower_quality": len(se.lower_quality)}))
"""


@dataclass(frozen=True)
class Result:
    seconds: float
    peak_mb: float
    lower_quality: int
    note: str = ""
    split: dict | None = None  # imgindex's: the scans and searches rows' timings


def split_of(db: Path) -> dict:
    """The cold run's scan and search timings (``ScanTimings``, ``SearchTimings``), from its index."""
    with sqlite3.connect(db) as conn:
        scan = json.loads(conn.execute("SELECT timings FROM scans ORDER BY id DESC LIMIT 1").fetchone()[0])
        search = json.loads(conn.execute("SELECT timings FROM searches ORDER BY id DESC LIMIT 1").fetchone()[0])
    return {"scan": scan, "search": search}


def describe_split(result: Result, processes: int = 2) -> str:
    scan, search = result.split["scan"], result.split["search"]
    rest = result.seconds - scan["total"] - search["total"]
    share = scan["decode"] / processes / result.seconds
    return (f"walk {scan['walk']:.2f} s, hash {scan['hash']:.2f} s CPU, decode {scan['decode']:.2f} s CPU, keys"
            f" {scan['keys']:.2f} s CPU, write {scan['write']:.2f} s (scan {scan['total']:.2f} s); search"
            f" {search['total']:.2f} s (pixels {search['pixels']:.2f}, signals {search['signals']:.2f}, groups"
            f" {search['groups']:.2f}); start-up, exit and output {rest:.2f} s. Decoding kept {share:.0%} of the"
            f" {processes} cores busy over the whole run")


def difpy_python() -> Path:
    venv = WORKDIR / f"difpy-{DIFPY_VERSION}-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"  installing difPy=={DIFPY_VERSION} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"difPy=={DIFPY_VERSION}"], check=True)
    return python


def run_difpy(folder: Path, similarity: str) -> Result:
    runner = WORKDIR / "difpy_runner.py"
    runner.write_text(DIFPY_RUNNER)
    run = measure([str(difpy_python()), str(runner), str(folder), similarity])
    if run.returncode != 0:
        return Result(float("nan"), run.peak_rss_mb, -1, f"difPy failed: {run.stderr.strip()[-200:]}")
    data = json.loads(run.stdout.strip().splitlines()[-1])
    return Result(run.seconds, run.peak_rss_mb, data["lower_quality"], f"build {data['build']:.1f} s")


def run_imgindex(folder: Path, similarity: str) -> tuple[Result, Result]:
    """A cold run (fresh database), then the same command again (nothing changed)."""
    with tempfile.TemporaryDirectory() as tmp:
        db, out = Path(tmp) / "bench.db", Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "imgindex.cli", "find", str(folder), "--db", str(db), "--processes", "2",
               "--similarity", similarity, "--format", "json", "-o", str(out), "-q"]
        results = []
        for attempt in range(2):
            run = measure(cmd)
            if run.returncode != 0:
                raise SystemExit(f"imgindex failed: {run.stderr}")
            lower = sum(len(matches) for matches in json.loads(out.read_text()).values())
            results.append(Result(run.seconds, run.peak_rss_mb, lower, split=split_of(db) if attempt == 0 else None))
        return results[0], results[1]


_measured: dict[tuple[str, str], Result] = {}


def run_difpy_once(folder: Path, similarity: str) -> Result:
    """difPy on a folder, measured once per run (an extrapolation reuses a size measured already)."""
    key = (str(folder), similarity)
    if key not in _measured:
        _measured[key] = run_difpy(folder, similarity)
    return _measured[key]


def extrapolated(folder_small: Path, n_small: int, n: int, similarity: str) -> Result:
    small = run_difpy_once(folder_small, similarity)
    if small.lower_quality < 0:
        return small
    build = float(small.note.split()[1])
    search = small.seconds - build
    scale = n / n_small
    seconds = build * scale + search * scale * scale
    note = f"extrapolated from {n_small} images ({small.seconds:.1f} s there): build x{scale:g}, search x{scale * scale:g}"
    return Result(seconds, float("nan"), -1, note)


LOAD_BEFORE = "%.2f %.2f %.2f" % os.getloadavg()


STANDARD = ((1000, 1024, "duplicates"), (5000, 1024, "similar"), (500, 4000, "duplicates"))  # README's table


def workloads(args) -> list[tuple[int, int, str, Path]]:
    """(images, size, similarity, folder) to run: README's three workloads when no option picks others."""
    if args.corpus:
        count = len([p for p in args.corpus.rglob("*") if p.is_file()])
        return [(count, 0, similarity, args.corpus) for similarity in args.similarity or ("duplicates", "similar")]
    if args.n is None and args.size is None and args.similarity is None:
        return [(n, size, similarity, corpus(n, size)) for n, size, similarity in STANDARD]
    size = args.size or 1024
    return [(n, size, similarity, corpus(n, size)) for n in args.n or (1000, 5000)
            for similarity in args.similarity or ("duplicates", "similar")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", help="images (default 1000 5000)")
    parser.add_argument("--corpus", type=Path, help="use this folder instead of a generated corpus (one size)")
    parser.add_argument("--size", type=int, help="long side of the generated JPEGs (default 1024; 4000: 12 MP)")
    parser.add_argument("--similarity", nargs="+", help="default: duplicates similar")
    parser.add_argument("--difpy-max", type=int, default=5000, help="run difPy itself up to this many images")
    parser.add_argument("--skip-difpy", action="store_true")
    args = parser.parse_args()
    rows = []
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parent.parent / "imgindex")],
                   check=True, stdout=subprocess.DEVNULL)  # as a pip install leaves it: bytecode compiled once
    for n, size, similarity, folder in workloads(args):
        warm(folder)
        print(f"{n} images{f' of {size} px' if size else ''}, {similarity}:", flush=True)
        cold, again = run_imgindex(folder, similarity)
        print(f"  imgindex: {cold.seconds:.2f} s, {cold.peak_mb:.0f} MB; again (nothing changed) "
              f"{again.seconds:.2f} s", flush=True)
        print(f"  imgindex's time: {describe_split(cold)}", flush=True)
        if args.skip_difpy:
            dif = Result(float("nan"), float("nan"), -1, "skipped")
        elif n <= args.difpy_max or args.corpus:
            dif = run_difpy_once(folder, similarity)
        else:
            dif = extrapolated(corpus(args.difpy_max, size), args.difpy_max, n, similarity)
        print(f"  difPy:    {dif.seconds:.2f} s, {dif.peak_mb:.0f} MB  {dif.note}", flush=True)
        rows.append((n, similarity, dif, cold, again))
    print()
    print(f"{'images':>7} {'similarity':<11} {'difPy s':>9} {'difPy MB':>9} {'imgindex s':>11} {'imgindex MB':>12}"
          f" {'re-run s':>9} {'speed-up':>9} {'decoding':>9} {'lower_quality difPy/imgindex':>30}")
    for n, similarity, dif, cold, again in rows:
        ratio = dif.seconds / cold.seconds if cold.seconds else float("nan")
        found = f"{dif.lower_quality if dif.lower_quality >= 0 else '-'}/{cold.lower_quality}"
        mark = "*" if "extrapolated" in dif.note else ""
        share = cold.split["scan"]["decode"] / 2 / cold.seconds
        print(f"{n:>7} {similarity:<11} {dif.seconds:>8.1f}{mark:1} {dif.peak_mb:>9.0f} {cold.seconds:>11.2f}"
              f" {cold.peak_mb:>12.0f} {again.seconds:>9.2f} {ratio:>8.1f}x {share:>9.0%} {found:>30}")
    if any("extrapolated" in r[2].note for r in rows):
        print("* difPy time extrapolated from a subset (see above); its memory was not measured there.")
    print(f"machine: {os.cpu_count()} CPUs, load average before the run {LOAD_BEFORE}; both tools with processes=2;"
          " imgindex cold run = fresh database. decoding: imgindex's decode CPU time / 2 cores / its wall time.")


if __name__ == "__main__":
    main()
