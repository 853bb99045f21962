#!/usr/bin/env python3
"""The Dask executor's overhead against the local worker pool, the same processes on one machine.

    python benchmarks/distributed.py [--n 20000] [--vectors 200000] [--processes 2] [--only e2e|search]
                                     [--repeat 1]

Target: `--scheduler local` at most 1.3x the local pool's wall time.

- End to end: `imgindex find DIR --db fresh.db --similarity duplicates|similar --processes P`, a
  cold run (fresh database) on the photo-like corpus of `_common.corpus` (1024-px JPEGs, 5% byte
  copies, 5% re-encoded near-copies; cached under $IMGINDEX_BENCH_DIR, default
  /tmp/imgindex-bench; read once first, so every run finds it in the page cache), with the
  local pool and with `--scheduler local` (a LocalCluster of P single-threaded workers started
  by the command, in a process of its own). The whole command is timed, the cluster's start
  and stop included; what those cost alone comes from the same command on an empty folder
  (median of three runs each way: the difference is the cluster).
- Search only: `imgindex search --db copy.db --similarity duplicates|similar --full --processes P`
  on M synthetic 50x50 vectors (`scale.fill`: 1% near copies, 0.5% exact copies). The filled
  index is cached in WORKDIR with its search keys (the signals' too) and point index already
  computed (one `similar` search when it is built), so the timed searches compare; each run
  gets a fresh copy of it, written to disk (sync) before the command starts: the kernel would
  otherwise write its 2 GB back during the timed command, a load on the machine.

Each command runs as a subprocess (measure: wall time, peak RSS summed over its process tree,
sampled every 50 ms). The Dask run's cluster (its host process and the workers the host spawns)
descends from the imgindex process, so the tree sum includes it: a second sampler here checks
that, per run, and the script stops if a cluster process was not in the measured tree or
outlived the command. Each dask run must find exactly what the local run found: the same groups
(the JSON outputs, parsed) and the same pairs with bit-identical MSEs and orientations (read from
both indexes, by path); the index must also say the work ran where it should (the scans' and
searches' `executor`). A difference is printed loudly and the script exits 1 after the table.
Benchmarks print figures; they never assert. With --repeat R, each command runs R times,
local and dask alternating, and the median is printed.

Linux only (/proc). Run it on a quiet machine: the ratio is what it is for. The commands run
in a scratch folder, never in benchmarks/: `python -m` puts the working folder first on
sys.path, where this file would stand in for the `distributed` package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from _common import WORKDIR, Run, corpus, measure  # noqa: E402

TARGET = 1.3
SIMILARITIES = ("duplicates", "similar")
EXECUTORS = ("local", "dask")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def imgindex_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "imgindex.cli", *map(str, args)]


def with_executor(cmd: list[str], executor: str) -> list[str]:
    return cmd + (["--scheduler", "local"] if executor == "dask" else [])


# --- the process tree, seen a second time --------------------------------------------------

@dataclass
class Tree:
    """What a second sampler saw of this process's descendants during one command."""

    kinds: dict[int, str] = field(default_factory=dict)  # pid -> command | pool | host | worker | helper
    peak_kb: int = 0  # the largest sum of RSS over the tree
    cluster_kb_at_peak: int = 0  # the host and its descendants, at that sample
    escaped: set[int] = field(default_factory=set)  # cluster pids alive but out of the tree while the command ran
    left: set[int] = field(default_factory=set)  # cluster pids still alive after the command ended

    def count(self, kind: str) -> int:
        return sum(1 for k in self.kinds.values() if k == kind)


def _processes() -> tuple[dict[int, int], dict[int, int]]:
    """pid -> ppid and pid -> RSS in kB, of every process."""
    parents, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fp:
                stat = fp.read()
            with open(f"/proc/{entry}/statm") as fp:
                pages = int(fp.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        pid = int(entry)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        rss[pid] = pages * PAGE_KB
    return parents, rss


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fp:
            return fp.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class TreeWatch:
    """Samples this process's descendants (the command measure runs, and everything under it)
    every ``every`` seconds, classifying them, to check what measure's tree sum covers."""

    def __init__(self, every: float = 0.2):
        self.every, self.tree = every, Tree()
        self.cmdlines: dict[int, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Tree:
        self.thread.start()
        return self.tree

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        parents, _ = _processes()
        self.tree.left = {pid for pid, kind in self.tree.kinds.items() if kind in ("host", "worker")
                          and pid in parents and _cmdline(pid) == self.cmdlines.get(pid)}

    def _run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            parents, rss = _processes()
            children: dict[int, list[int]] = {}
            for pid, ppid in parents.items():
                children.setdefault(ppid, []).append(pid)
            total = cluster = 0
            inside: set[int] = set()
            stack = [(pid, "command", False) for pid in children.get(me, [])]
            while stack:
                pid, kind, under_host = stack.pop()
                if pid not in self.cmdlines:
                    self.cmdlines[pid] = _cmdline(pid)
                cmd = self.cmdlines[pid]
                if "imgindex.cluster.host" in cmd:
                    kind, under_host = "host", True
                elif kind != "command" and under_host:  # workers: spawned, or forked from the forkserver
                    if "resource_tracker" in cmd:
                        kind = "helper"
                    elif "forkserver" in cmd:
                        kind = "worker" if kind == "forkserver" else "forkserver"
                    else:
                        kind = "worker"
                elif kind != "command":
                    kind = "helper" if "resource_tracker" in cmd else "pool"
                self.tree.kinds.setdefault(pid, kind)
                inside.add(pid)
                total += rss.get(pid, 0)
                cluster += rss.get(pid, 0) if under_host else 0
                next_kind = "child" if kind == "command" else kind
                stack.extend((c, next_kind, under_host) for c in children.get(pid, []))
            if total > self.tree.peak_kb:
                self.tree.peak_kb, self.tree.cluster_kb_at_peak = total, cluster
            if inside:  # the command runs: a cluster process alive outside its tree would be missed
                self.tree.escaped |= {pid for pid, kind in self.tree.kinds.items() if kind in ("host", "worker")
                                      and pid in parents and pid not in inside}
            self.stop.wait(self.every)


# --- what a run found ----------------------------------------------------------------------

@dataclass(frozen=True)
class Found:
    groups: dict  # the JSON output, parsed: keeper -> [[path, mse], ...]
    pairs: dict  # (path, path) sorted -> (mse, rotation, mirrored, reversed: path_a > path_b)
    ids: dict  # path -> image id
    executors: tuple[str, ...]  # of the latest scan (if any) and the latest search


def found(db: Path, out: Path) -> Found:
    groups = json.loads(out.read_text())
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        pairs = {}
        for a, b, mse, rotation, mirrored in conn.execute(
                "SELECT a.path, b.path, p.mse, p.rotation, p.mirrored FROM pairs p"
                " JOIN images a ON a.id = p.image_a JOIN images b ON b.id = p.image_b"
                " WHERE p.search_id = (SELECT id FROM latest_search)"):
            pairs[(min(a, b), max(a, b))] = (mse, rotation, mirrored, a > b)
        ids = dict(conn.execute("SELECT path, id FROM images"))
        executors = tuple(r[0] for r in conn.execute(
            "SELECT executor FROM (SELECT executor FROM scans ORDER BY id DESC LIMIT 1)"
            " UNION ALL SELECT executor FROM searches WHERE id = (SELECT id FROM latest_search)"))
    return Found(groups, pairs, ids, executors)


def differences(local: Found, dask: Found) -> list[str]:
    """What the dask run found differently (empty: the same groups, pairs and MSEs)."""
    out = []
    if local.groups != dask.groups:
        keepers = set(local.groups) ^ set(dask.groups)
        changed = [k for k in set(local.groups) & set(dask.groups) if local.groups[k] != dask.groups[k]]
        out.append(f"groups differ: {len(local.groups)} local, {len(dask.groups)} dask; {len(keepers)} keepers in"
                   f" only one, {len(changed)} groups with other members or MSEs (e.g. "
                   f"{(sorted(keepers) + sorted(changed))[:2]})")
    missing, extra = set(local.pairs) - set(dask.pairs), set(dask.pairs) - set(local.pairs)
    if missing or extra:
        out.append(f"pairs differ: {len(local.pairs)} local, {len(dask.pairs)} dask; {len(missing)} only local"
                   f" (e.g. {sorted(missing)[:2]}), {len(extra)} only dask (e.g. {sorted(extra)[:2]})")
    mse = [p for p in set(local.pairs) & set(dask.pairs) if local.pairs[p][0] != dask.pairs[p][0]]
    if mse:
        p = sorted(mse)[0]
        out.append(f"{len(mse)} pairs with another MSE, e.g. {p}: local {local.pairs[p][0]!r},"
                   f" dask {dask.pairs[p][0]!r}")
    turned = [p for p in set(local.pairs) & set(dask.pairs)
              if local.pairs[p][3] == dask.pairs[p][3] and local.pairs[p][1:3] != dask.pairs[p][1:3]]
    if turned:
        p = sorted(turned)[0]
        out.append(f"{len(turned)} pairs with another orientation, e.g. {p}: local (rotation, mirrored)"
                   f" {local.pairs[p][1:3]}, dask {dask.pairs[p][1:3]}")
    return out


def check_executors(result: Found, executor: str, cmd: list[str]) -> None:
    want = "dask local" if executor == "dask" else "local pool"
    if not result.executors or not all(e and e.startswith(want) for e in result.executors):
        raise SystemExit(f"FAILED: {' '.join(cmd)} should have run on '{want}', the index says {result.executors}")


def check_tree(tree: Tree, executor: str, processes: int, cmd: list[str]) -> str:
    """Fails loudly if a cluster process escaped the measured tree; returns what the tree held."""
    hosts, workers = tree.count("host"), tree.count("worker")
    if executor == "dask" and hosts == workers == 0 and not tree.escaped and not tree.left:
        return "no cluster started: a duplicates search starts it at first use, and this one had no work for it"
    if executor == "dask" and (hosts != 1 or workers < processes):
        raise SystemExit(f"FAILED: the process tree of {' '.join(cmd)} held {hosts} cluster hosts and {workers}"
                         f" Dask workers (expected 1 and {processes}): measure's tree sum would miss the cluster")
    if tree.escaped:
        raise SystemExit(f"FAILED: cluster processes {sorted(tree.escaped)} left the tree of {' '.join(cmd)} while"
                         " it ran (re-parented): measure's peak memory misses them")
    if tree.left:
        raise SystemExit(f"FAILED: cluster processes {sorted(tree.left)} still run after {' '.join(cmd)} ended")
    if executor == "dask":
        helpers = tree.count("helper") + tree.count("forkserver")
        return (f"1 command + 1 cluster host + {workers} workers + {helpers} helpers in the tree;"
                f" the cluster {tree.cluster_kb_at_peak / 1024:.0f} MB of {tree.peak_kb / 1024:.0f} MB at the peak")
    return f"1 command + {tree.count('pool')} pool workers + {tree.count('helper')} helpers in the tree"


# --- runs ------------------------------------------------------------------------------------

@dataclass
class Row:
    workload: str
    runs: dict[str, list[Run]] = field(default_factory=lambda: {e: [] for e in EXECUTORS})
    same: bool = True

    def seconds(self, executor: str) -> float:
        return statistics.median(r.seconds for r in self.runs[executor])

    def peak(self, executor: str) -> float:
        return statistics.median(r.peak_rss_mb for r in self.runs[executor])

    @property
    def ratio(self) -> float:
        return self.seconds("dask") / self.seconds("local")


@contextmanager
def scratch() -> Iterator[Path]:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORKDIR, prefix="distributed-run-") as tmp:
        yield Path(tmp)


def timed(cmd: list[str], tmp: Path, executor: str, processes: int) -> tuple[Run, str]:
    """measure(cmd), run in ``tmp`` (never in benchmarks/, whose distributed.py would shadow the
    package of that name for ``python -m``), with the tree checked."""
    with TreeWatch() as tree:
        run = measure(cmd, cwd=tmp)
    note = check_tree(tree, executor, processes, cmd)
    return run, f"{note}; measure's peak {run.peak_rss_mb:.0f} MB"


def compare_row(row: Row, workload: str, command, processes: int, repeat: int, failures: list[str]) -> None:
    """``command(executor, tmp) -> (cmd, db, out)``; each executor ``repeat`` times, alternating."""
    reference = None
    for attempt in range(repeat):
        for executor in EXECUTORS:
            with scratch() as tmp:
                cmd, db, out = command(executor, tmp)
                run, note = timed(cmd, tmp, executor, processes)
                result = found(db, out)
            check_executors(result, executor, cmd)
            row.runs[executor].append(run)
            if reference is None:
                reference = result
            elif reference.ids != result.ids:
                note += "; its scan numbered the images otherwise than the first run's (compared by path)"
            extra = [line for line in run.stderr.strip().splitlines() if line.strip()]
            print(f"  {workload}, {executor:<5} {run.seconds:8.2f} s  {run.peak_rss_mb:6.0f} MB  "
                  f"{len(result.groups)} groups, {len(result.pairs)} pairs  ({note})", flush=True)
            if extra:
                print(f"    its stderr: {' | '.join(extra)[:400]}", flush=True)
            diff = differences(reference, result) if result is not reference else []
            if diff:
                row.same = False
                message = (f"{workload} (run {attempt + 1}, {executor}): the {executor} run found something else"
                           " than the first local run")
                failures.append(message)
                print("\n" + "!" * 100 + f"\n!!! FAILED: {message}:", file=sys.stderr)
                for line in diff:
                    print(f"!!!   {line}", file=sys.stderr)
                print("!" * 100 + "\n", file=sys.stderr, flush=True)


def cluster_start(processes: int) -> tuple[float, float, float]:
    """(local, dask, dask - local) medians of three `find` runs on an empty folder."""
    empty = WORKDIR / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, list[float]] = {e: [] for e in EXECUTORS}
    for _ in range(3):
        for executor in EXECUTORS:
            with scratch() as tmp:
                cmd = with_executor(imgindex_cmd("find", empty, "--db", tmp / "fresh.db", "--processes", processes,
                                                 "--format", "json", "-o", tmp / "out.json", "-q"), executor)
                run, _ = timed(cmd, tmp, executor, processes)
            seconds[executor].append(run.seconds)
    local, dask = (statistics.median(seconds[e]) for e in EXECUTORS)
    return local, dask, dask - local


def end_to_end(n: int, processes: int, repeat: int, failures: list[str]) -> tuple[list[Row], str]:
    folder = corpus(n, processes=processes)
    for path in folder.iterdir():  # every run, the first one too, reads the files from the page cache
        path.read_bytes()
    print(f"End to end: `imgindex find` on {n:,} JPEGs in {folder}, a fresh index each run", flush=True)
    local, dask, start = cluster_start(processes)
    start_note = (f"the cluster's start and stop: {start:.2f} s (`find` on an empty folder: {dask:.2f} s with"
                  f" --scheduler local, {local:.2f} s without; medians of 3)")
    print(f"  {start_note}", flush=True)
    rows = []
    for similarity in SIMILARITIES:
        def command(executor, tmp, similarity=similarity):
            db, out = tmp / "fresh.db", tmp / "out.json"
            cmd = imgindex_cmd("find", folder, "--db", db, "--similarity", similarity, "--processes", processes,
                               "--format", "json", "-o", out, "-q")
            return with_executor(cmd, executor), db, out

        row = Row(f"find {n:,} JPEGs, {similarity}")
        compare_row(row, row.workload, command, processes, repeat, failures)
        rows.append(row)
    return rows, start_note


def vectors_db(m: int, processes: int) -> Path:
    """WORKDIR/distributed-vectors-<m>-all-keys.db: scale.fill's m vectors, every search key (the
    tone and rank signals' too) and the point index computed (one similar search: a scan makes
    them beside each decode, and stored vectors have had none). Cached; a partial one from an
    interrupted build is redone."""
    cached = WORKDIR / f"distributed-vectors-{m}-all-keys.db"
    if cached.exists():
        return cached
    from scale import fill

    partial = cached.with_name(cached.name + ".partial")
    for stale in WORKDIR.glob(partial.name + "*"):
        stale.unlink()
    print(f"  filling {partial} with {m:,} synthetic vectors (cached for later runs)...", flush=True)
    exact, near = fill(partial, m)
    with scratch() as tmp:
        measure(imgindex_cmd("search", "--db", partial, "--similarity", "similar", "--full", "--processes",
                             processes, "--format", "csv", "-o", os.devnull, "-q"), cwd=tmp)
    if any(WORKDIR.glob(partial.name + "-*")):
        raise SystemExit(f"FAILED: {partial} kept a -wal or -shm file after its last connection closed")
    partial.rename(cached)
    print(f"  {exact:,} exact and {near:,} near copies planted; search keys computed: {cached}", flush=True)
    return cached


def search_only(m: int, processes: int, repeat: int, failures: list[str]) -> list[Row]:
    print(f"Search only: `imgindex search --full` on {m:,} stored vectors, a fresh copy of the index each run"
          " (written to disk before the command starts)",
          flush=True)
    cached = vectors_db(m, processes)
    rows = []
    # the tone, rank and trimmed passes of 'similar' run in the coordinator's own processes whatever the
    # executor: 'similar, pixels only' is the part a cluster runs
    for similarity, signals in (("duplicates", ()), ("similar", ()), ("similar", ("--signals", "pixels"))):
        def command(executor, tmp, similarity=similarity, signals=signals):
            db, out = tmp / "copy.db", tmp / "out.json"
            shutil.copyfile(cached, db)
            os.sync()  # the copy's 2 GB written back now, not by the kernel during the timed command
            cmd = imgindex_cmd("search", "--db", db, "--similarity", similarity, *signals, "--full", "--processes",
                               processes, "--format", "json", "-o", out, "-q")
            return with_executor(cmd, executor), db, out

        row = Row(f"search {m:,} vectors, {similarity}{', pixels only' if signals else ''}")
        compare_row(row, row.workload, command, processes, repeat, failures)
        rows.append(row)
    return rows


def table(rows: list[Row], processes: int, repeat: int, notes: list[str]) -> None:
    print()
    print(f"| workload | local pool ({processes} processes) | dask local ({processes} workers) | dask / local"
          " | peak memory local / dask | same result |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        mark = "" if row.ratio <= TARGET else f" (over {TARGET}x)"
        print(f"| {row.workload} | {row.seconds('local'):.2f} s | {row.seconds('dask'):.2f} s | {row.ratio:.2f}x{mark}"
              f" | {row.peak('local'):.0f} / {row.peak('dask'):.0f} MB | {'yes' if row.same else '**NO**'} |")
    print()
    for note in notes:
        print(f"- {note}")
    print(f"- Whole commands (Python start-up included; with dask the cluster's start and stop too); memory is the"
          f" peak RSS summed over every process of the command (with dask: its cluster host and workers);"
          f" {'median of ' + str(repeat) + ' runs' if repeat > 1 else 'one run each'}; target dask / local"
          f" <= {TARGET}x. Machine: {os.cpu_count()} CPUs.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="JPEGs for the end-to-end rows")
    parser.add_argument("--vectors", type=int, default=200_000, help="stored vectors for the search-only rows")
    parser.add_argument("--processes", type=int, default=2, help="local pool processes = Dask workers")
    parser.add_argument("--only", choices=("e2e", "search"), help="only the end-to-end or the search-only rows")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command (the median is printed)")
    args = parser.parse_args()
    if args.n < 1 or args.vectors < 2 or args.processes < 1 or args.repeat < 1:
        parser.error("--n, --vectors, --processes and --repeat must be positive (--vectors at least 2)")
    failures: list[str] = []
    rows, notes = [], []
    if args.only in (None, "e2e"):
        e2e_rows, start_note = end_to_end(args.n, args.processes, args.repeat, failures)
        rows += e2e_rows
        notes.append(start_note[0].upper() + start_note[1:])
    if args.only in (None, "search"):
        rows += search_only(args.vectors, args.processes, args.repeat, failures)
    table(rows, args.processes, args.repeat, notes)
    if failures:
        print(f"\nFAILED: {len(failures)} runs found something else than the first local run:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
