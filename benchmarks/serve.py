#!/usr/bin/env python3
"""The review server at scale: 100,000 images in 10,000 groups, timed from outside with real HTTP.

    python benchmarks/serve.py [--n 100000] [--groups 10000] [--photos 40] [--cache DIR]

The index: n synthetic 50x50 tensors stored without decoding (as in scale.py), ``groups`` of
them with one exact copy, searched with `imgindex search` (duplicates). ``photos`` of the
grouped rows are then pointed at real 12-MP JPEGs on disk (made once, cached), for the
thumbnails. `imgindex serve` runs as a subprocess; the figures are: start (spawn to the first
answer), the first page (the HTML, the state and the first page of groups, as a browser asks
for them: the server builds its snapshot of the groups here), a page of groups (p50/p95 over 30 random pages), a cold and a cached 320-px
thumbnail of a 12-MP JPEG (p95), idle CPU over 10 s, and the server's peak RSS. Every request
must answer 200; the script exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import WORKDIR, photo_like  # noqa: E402
from _vectors import insert_images, pictures  # noqa: E402

import imgindex  # noqa: E402

TARGETS = {"start": 1.0, "first page": 0.300, "page of groups p95": 0.150, "cached thumbnail p95": 0.020,
           "cold 12-MP thumbnail p95": 0.150}


def build(folder: Path, n: int, groups: int, photos: int) -> Path:
    db = folder / "serve.db"
    if db.exists():
        return db
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "serve.db.part"
    tmp.unlink(missing_ok=True)
    rng = np.random.default_rng(0)
    step = n // groups
    with imgindex.Index(tmp) as index:
        for start in range(0, n, 1000):
            k = min(1000, n - start)
            tensors = pictures(rng, k)
            for j in range(0, k - 1, step):  # one exact copy every `step` images: `groups` groups
                tensors[j + 1] = tensors[j]
            insert_images(index, [f"/synthetic/f{(start + j) // 500:04d}/{start + j:07d}.jpg" for j in range(k)],
                          tensors)
    run = subprocess.run([sys.executable, "-m", "imgindex.cli", "search", "--db", str(tmp), "--processes", "2",
                          "--format", "csv", "-o", os.devnull], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"FAILED: the search exited {run.returncode}: {run.stderr}")
    photo_dir = folder / "photos"
    photo_dir.mkdir(exist_ok=True)
    with imgindex.Index(tmp) as index:
        ids = [r[0] for r in index.db.execute("SELECT image_id FROM match_groups ORDER BY group_id LIMIT ?", [photos])]
        for k, image_id in enumerate(ids):  # real 12-MP JPEGs for the thumbnails
            path = photo_dir / f"IMG_{k:04d}.jpg"
            photo_like(k, 4000, 3000).save(path, quality=90)
            st = path.stat()
            index.db.execute("UPDATE images SET path = ?, folder = ?, size = ?, mtime_ns = ?, width = 4000,"
                             " height = 3000 WHERE id = ?", [str(path), str(photo_dir), st.st_size, st.st_mtime_ns,
                                                             image_id])
    tmp.rename(db)
    return db


class Client:
    def __init__(self, url: str):
        base, self.token = url.split("/?token=")
        self.host = base.removeprefix("http://")
        self.conn = http.client.HTTPConnection(self.host, timeout=60)

    def get(self, path: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        self.conn.request("GET", path, headers={"Host": self.host, "Cookie": f"imgindex_token={self.token}"})
        response = self.conn.getresponse()
        body = response.read()
        seconds = time.perf_counter() - started
        if response.status != 200:
            sys.exit(f"FAILED: GET {path} answered {response.status}: {body[:300]!r}")
        return seconds, body


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--cache", type=Path, default=WORKDIR / "serve")
    args = parser.parse_args()
    print(f"$ python benchmarks/serve.py --n {args.n} --groups {args.groups} --photos {args.photos}")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    built = time.perf_counter()
    db = build(args.cache / f"n{args.n}-g{args.groups}-p{args.photos}", args.n, args.groups, args.photos)
    print(f"index {db} ready in {time.perf_counter() - built:.1f} s")
    spawned = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "imgindex.cli", "serve", "--db", str(db), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            sys.exit(f"FAILED: serve did not start: {proc.stderr.read()}")
        client = Client(url)
        while True:  # answering at all (a static file: nothing read from the index yet)
            try:
                client.get("/static/app.css")
                break
            except (ConnectionError, OSError):
                client = Client(url)
                time.sleep(0.01)
        figures = {"start": time.perf_counter() - spawned}
        # what a browser asks for first: the page, the state, the first page of groups (the snapshot is built here)
        figures["first page"] = sum(client.get(path)[0] for path in ("/", "/api/state", "/api/groups"))
        pages = -(-args.groups // 20)
        figures["page of groups p95"] = p95([client.get(f"/api/groups?page={random.randint(1, pages)}")[0]
                                             for _ in range(30)])
        with imgindex.Index(db) as index:
            real = [r[0] for r in index.db.execute("SELECT id FROM images WHERE path NOT LIKE '/synthetic/%'")]
        figures["cold 12-MP thumbnail p95"] = p95([client.get(f"/thumb/{i}?size=320")[0] for i in real])
        figures["cached thumbnail p95"] = p95([client.get(f"/thumb/{i}?size=320")[0] for i in real])
        idle_from = cpu_seconds(proc.pid)
        time.sleep(10)
        idle = (cpu_seconds(proc.pid) - idle_from) / 10
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"\n{args.n:,} images, {args.groups:,} groups; {len(real)} 12-MP JPEGs for thumbnails")
    print(f"{'figure':<28}{'measured':>12}{'target':>12}")
    for name, value in figures.items():
        print(f"{name:<28}{value * 1000:>10.0f} ms{TARGETS[name] * 1000:>10.0f} ms"
              f"{'' if value <= TARGETS[name] else '   (over)'}")
    print(f"{'idle CPU':<28}{idle * 100:>11.2f}%{'~0':>12}")
    print(f"{'peak RSS (server)':<28}{rss:>9.0f} MB{300:>9} MB{'' if rss < 300 else '   (over)'}")
    if proc.returncode not in (0, -15):
        sys.exit(f"FAILED: serve exited {proc.returncode}: {proc.stderr.read()}")


if __name__ == "__main__":
    main()
