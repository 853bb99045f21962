#!/usr/bin/env python3
"""A million images on one machine: full, incremental and one-image searches on realistic vectors.

    python benchmarks/million.py [--n 1000000] [--processes 2] [--sample 20000]

The set (``_windows.py``): random windows of the real photos in ../shared/corpora, with planted
exact, near and turned copies; built once and cached in WORKDIR (about 8 KB an image on disk).
Each search runs as its own `imgindex search` process; its wall time and the peak RSS summed over
it and its workers are printed. Exactness is checked, not assumed: every planted pair must be
found, and on a random sample of the set a brute-force pass (the kernel on every pair of the
sample, no pruning) must find exactly the pairs the search stored among those images. Then 1,000
new images (with planted copies of old ones) and then one new image are searched incrementally,
with `imgindex search` (which also writes every group) and then as the watcher does (a process
that opens the index and searches); exactness is checked again after them.
The candidate counts show what each bound leaves.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import WORKDIR, measure  # noqa: E402
from _vectors import insert_images, near_copy  # noqa: E402
from _windows import fill, make_block, photo_files  # noqa: E402

import imgindex  # noqa: E402
from imgindex.compare import kernel, nearby, space  # noqa: E402
from imgindex.compare.settings import SIMILARITY_PRESETS  # noqa: E402
from imgindex.db.queries import load_tensors  # noqa: E402
from imgindex.report.data import load_groups  # noqa: E402


API_SEARCH = """
import sys, imgindex
with imgindex.Index(sys.argv[1]) as index:
    r = index.search(similarity="similar", processes=int(sys.argv[2]))
assert r.incremental, r
print(f"Search {r.search_id}: {r.new_images:,} new, {r.new_pairs:,} new pairs, the search itself {r.duration:.2f} s")
"""


def build(n: int, processes: int) -> tuple[Path, list]:
    """The cached set of n vectors, and its planted pairs."""
    db = WORKDIR / f"windows-{n}.db"
    planted_file = db.with_suffix(".planted.json")
    if not planted_file.exists():
        for stale in WORKDIR.glob(f"windows-{n}.db*"):
            stale.unlink()
        WORKDIR.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with imgindex.Index(db) as index:
            planted = fill(index, n, processes, progress=lambda line: print(line, end="\r", flush=True))
        planted_file.write_text(json.dumps(planted))
        print(f"\n  built in {time.monotonic() - started:.0f} s (cached: {db})")
    return db, json.loads(planted_file.read_text())


def search(db: Path, similarity: str, processes: int, *, full: bool) -> tuple[float, float, str]:
    cmd = [sys.executable, "-m", "imgindex.cli", "search", "--db", str(db), "--similarity", similarity,
           "--save-profile", "--processes", str(processes), "--format", "csv", "-o", "/dev/null"]
    run = measure(cmd + (["--full"] if full else []))
    return run.seconds, run.peak_rss_mb, run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ""


def stored_pairs(db: Path) -> set[tuple[int, int]]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute("SELECT image_a, image_b FROM pairs WHERE search_id = (SELECT id FROM latest_search)"))


def brute_force(db: Path, ids: np.ndarray, threshold: float, orientations) -> set[tuple[int, int]]:
    """Every pair among ``ids`` within the threshold: the kernel on all of them, blocks of 2,000."""
    with sqlite3.connect(db) as conn:
        tensors = load_tensors(conn, ids, 50)
    found = set()
    for i in range(0, len(ids), 2000):
        for j in range(i, len(ids), 2000):
            m = kernel.match_blocks(tensors[i:i + 2000], tensors[j:j + 2000], threshold, orientations, same=i == j)
            a, b = ids[i:i + 2000][m.rows], ids[j:j + 2000][m.cols]
            found |= {(min(x, y), max(x, y)) for x, y in zip(a.tolist(), b.tolist())}
    return found


def check_exact(db: Path, planted: list, sample: int, threshold: float, orientations) -> str:
    found = stored_pairs(db)
    missing = [p for p in planted if (p[0], p[1]) not in found]
    if missing:
        raise SystemExit(f"FAILED: {len(missing)} planted pairs not found, e.g. {missing[:3]}")
    with sqlite3.connect(db) as conn:
        n = conn.execute("SELECT max(id) FROM images").fetchone()[0]
    ids = np.sort(np.random.default_rng(1).choice(np.arange(1, n + 1), min(sample, n), replace=False))
    inside = set(ids.tolist())
    expected = brute_force(db, ids, threshold, orientations)
    got = {p for p in found if p[0] in inside and p[1] in inside}
    if got != expected:
        raise SystemExit(f"FAILED: on the sample the search stored {len(got)} pairs, brute force finds "
                         f"{len(expected)} ({len(expected - got)} missed, {len(got - expected)} extra)")
    return f"all {len(planted):,} planted pairs found; sample of {len(ids):,}: {len(got)} pairs = brute force"


def candidates(db: Path, threshold: float, orientations, sample: int = 4000) -> str:
    """Pairs left by each bound: exact for the cells, estimated on a sample for the distances."""
    with imgindex.Index(db) as index:
        ids = np.array([r[0] for r in index.db.execute("SELECT id FROM images ORDER BY id")], dtype=np.int64)
        features = nearby.load_orbits(index.db, ids, 5)
        rng = np.random.default_rng(2)
        pick = np.sort(rng.choice(len(ids), min(sample, len(ids)), replace=False))
        coarse = np.stack([np.frombuffer(r[0], dtype=np.float64).reshape(5, 5, 3) for r in index.db.execute(
            "SELECT coarse FROM search_keys WHERE image_id IN (SELECT value FROM json_each(?)) ORDER BY image_id",
            [json.dumps(ids[pick].tolist())])])
    limit = kernel.ssd_threshold(threshold, 7500)
    sp = space.fit(features, float(np.sqrt(limit)))
    keys = space.cell_keys(sp, space.project(sp, features))
    grid = space.make_grid(keys)
    in_cells = int(space.neighbour_counts(grid.keys, grid, space.neighbour_offsets(sp, half=False)).sum() - len(ids)) // 2
    total = len(ids) * (len(ids) - 1) // 2
    f = features[pick]
    d2 = ((f[:, None] - f[None]) ** 2).sum(-1)
    upper = np.triu_indices(len(pick), 1)
    orbit_share = float((d2[upper] <= limit).mean())
    c = coarse - kernel.coarse_center(kernel.grid_edges(50))
    block_ok = np.zeros(len(upper[0]), dtype=bool)
    for o in orientations:
        turned = kernel.orient(c, o).reshape(len(c), -1)
        flat = c.reshape(len(c), -1)
        dist = (flat ** 2).sum(1)[:, None] + (turned ** 2).sum(1)[None] - 2 * flat @ turned.T
        block_ok |= dist[upper] <= limit
    return (f"all pairs {total:.3g}; in neighbouring cells {in_cells:.3g} ({in_cells / total:.2%}); "
            f"within the orbit bound ~{orbit_share * total:.3g} ({orbit_share:.4%}); "
            f"within the block bound ~{block_ok.mean() * total:.3g} ({block_ok.mean():.4%})")


def add_images(db: Path, k: int, seed: int) -> list[tuple[int, int]]:
    """k new windows, one in ten a near copy of an old image; returns those planted pairs (old, new)."""
    tensors, _ = make_block((10_000 + seed, k, photo_files()))
    rng = np.random.default_rng(seed)
    with imgindex.Index(db) as index:
        first = index.db.execute("SELECT max(id) FROM images").fetchone()[0] + 1
        olds = rng.integers(1, first, max(1, k // 10))
        old_tensors = load_tensors(index.db, np.sort(olds), 50)
        for j, t in enumerate(old_tensors):
            tensors[j * 10 if k > 1 else 0] = near_copy(rng, t)
        insert_images(index, [f"/windows/new-{seed}/{first + j:07d}.jpg" for j in range(k)], tensors)
    return [(int(o), first + (j * 10 if k > 1 else 0)) for j, o in enumerate(np.sort(olds))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--sample", type=int, default=20_000)
    args = parser.parse_args()
    cached, planted = build(args.n, args.processes)
    db = WORKDIR / f"windows-{args.n}-run.db"  # a copy: the incremental runs add images to it
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy2(cached, db)
    print(f"{args.n:,} stored vectors of real-photo windows, {len(planted):,} planted pairs; "
          f"index {db.stat().st_size / args.n:,.0f} bytes an image on disk")
    orientations = kernel.orientation_indices(True, False)
    seconds, rss, summary = search(db, "duplicates", args.processes, full=True)
    print(f"  first search after the scan (computes every image's search keys once): {seconds:.1f} s, "
          f"peak RSS {rss:.0f} MB", flush=True)
    for similarity in ("duplicates", "similar"):
        seconds, rss, summary = search(db, similarity, args.processes, full=True)
        print(f"  {similarity:<10} full search {seconds:7.1f} s   peak RSS {rss:6.0f} MB (all processes)   {summary}",
              flush=True)
        if similarity == "duplicates":
            exact = [p for p in planted if p[2] == "exact"]
            found = stored_pairs(db)
            print(f"    {sum((a, b) in found for a, b, _ in exact):,} of {len(exact):,} planted exact copies found")
    threshold = SIMILARITY_PRESETS["similar"]
    print(f"  exactness: {check_exact(db, planted, args.sample, threshold, orientations)}", flush=True)
    print(f"  candidates ('similar'): {candidates(db, threshold, orientations)}", flush=True)
    for k, how in ((1000, "cli"), (1, "cli"), (1000, "api"), (1, "api")):
        new_pairs = add_images(db, k, seed=k + (7 if how == "api" else 0))
        if how == "cli":  # `imgindex search`, which also writes every group to its output (here /dev/null)
            seconds, rss, summary = search(db, "similar", args.processes, full=False)
        else:  # the watcher's case: a process that opens the index and searches, writing no listing
            run = measure([sys.executable, "-c", API_SEARCH, str(db), str(args.processes)])
            seconds, rss, summary = run.seconds, run.peak_rss_mb, run.stdout.strip()
        found = stored_pairs(db)
        lost = [p for p in new_pairs if p not in found]
        if lost:
            raise SystemExit(f"FAILED: the incremental search missed planted pairs {lost[:3]}")
        print(f"  +{k:<5,} new   incremental ({how}) {seconds:7.2f} s   peak RSS {rss:6.0f} MB   {summary}",
              flush=True)
    exact = check_exact(db, planted, args.sample, threshold, orientations)
    print(f"  exactness after the incremental searches: {exact}", flush=True)
    run = measure([sys.executable, "-m", "imgindex.cli", "status", "--db", str(db)])
    print(f"  status {run.seconds:.2f} s")
    print(f"  {report_top_groups(db, 500, args.processes)}")


def report_top_groups(db: Path, top: int, processes: int) -> str:
    """`imgindex report --limit-groups top`, after writing a PNG file (from its tensor) for each member
    of those groups: the stored vectors have no files, and the report's thumbnails need them."""
    folder = WORKDIR / "report-files"
    folder.mkdir(exist_ok=True)
    with imgindex.Index(db) as index:
        search_id = index.db.execute("SELECT id FROM latest_search").fetchone()[0]
        ids = sorted({m.image_id for g in load_groups(index.db, search_id)[:top] for m in g.members})
        with index.db.atomic():
            for image_id, tensor in zip(ids, load_tensors(index.db, ids, 50)):
                path = folder / f"{image_id}.png"
                Image.fromarray(tensor).save(path)
                index.db.execute("UPDATE images SET path = ?, folder = ? WHERE id = ?",
                                 [str(path), str(folder), image_id])
    run = measure([sys.executable, "-m", "imgindex.cli", "report", "--db", str(db), "--limit-groups", str(top),
                   "-o", str(WORKDIR / "report-million.html"), "--processes", str(processes)])
    return (f"report of the top {top} groups ({len(ids):,} images, thumbnails from files): {run.seconds:.1f} s,"
            f" peak RSS {run.peak_rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
