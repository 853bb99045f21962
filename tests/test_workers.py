"""Worker processes: never run the caller's script, survive a dead worker, keep frames clean."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from imgindex import Index
from imgindex.scan.reader import INLINE_BELOW
from imgindex.workers import WorkerDied, WorkerPool

from helpers import write_image

N = INLINE_BELOW + 16


def make_tree(root, n=N):
    for i in range(n):
        write_image(root / f"p{i:03d}.jpg", seed=i, size=(64, 48), quality=90)
    return root


def test_pool_runs_calls_and_returns_errors():
    with WorkerPool(2) as pool:
        tickets = {pool.submit("math:sqrt", 16.0): 4.0, pool.submit("math:factorial", 5): 120}
        bad = pool.submit("math:sqrt", -1.0)
        printed = pool.submit("builtins:print", "a stray print goes to stderr, not into the frames")
        outcomes = {o.ticket: o for _ in range(4) for o in pool.collect()}
        assert {t: outcomes[t].value for t in tickets} == tickets
        assert isinstance(outcomes[bad].error, ValueError)
        assert outcomes[printed].error is None and outcomes[printed].value is None


def test_a_dead_worker_fails_only_its_calls_and_is_replaced():
    with WorkerPool(1) as pool:
        pool.submit("os:getpid")
        (first,) = list(pool.collect())
        sleeping = pool.submit("time:sleep", 30)
        time.sleep(0.2)
        os.kill(first.value, signal.SIGKILL)
        (outcome,) = list(pool.collect())
        assert outcome.ticket == sleeping and isinstance(outcome.error, WorkerDied)
        pool.submit("os:getpid")
        (again,) = list(pool.collect())
        assert again.value not in (None, first.value)


def test_scan_survives_a_killed_worker(tmp_path):
    root = make_tree(tmp_path / "p")
    killed = []

    def progress(p):
        if not killed and p.decoded >= 8:
            pids = _worker_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

    with Index(tmp_path / "i.db") as index:
        report = index.scan([root], processes=2, progress=progress)
        assert killed and report.workers == 2
        assert (report.added, report.failed) == (N, 0)
        assert index.count() == N


def _worker_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fp:
                    cmd = fp.read()
                with open(f"/proc/{entry}/stat") as fp:
                    ppid = int(fp.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if b"imgindex._worker_main" in cmd and ppid == os.getpid():
                pids.append(int(entry))
    return pids


UNGUARDED = """
import imgindex
with imgindex.Index({db!r}) as index:
    report = index.scan([{root!r}], processes=2)
print("indexed", report.added, "with", report.workers, "workers")
"""


def test_script_without_main_guard_runs_from_a_file_and_from_stdin(tmp_path):
    """difPy crashed here: spawn/forkserver re-run an unguarded main module in every worker."""
    root = make_tree(tmp_path / "p")
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(UNGUARDED.format(db=str(tmp_path / "a.db"), root=str(root))))
    from_file = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120)
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.strip() == f"indexed {N} with 2 workers"
    source = UNGUARDED.format(db=str(tmp_path / "b.db"), root=str(root))
    from_stdin = subprocess.run([sys.executable, "-"], input=source, capture_output=True, text=True, timeout=120)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout.strip() == f"indexed {N} with 2 workers"
    assert "Traceback" not in from_file.stderr + from_stdin.stderr


def test_workers_open_a_database_whose_path_has_spaces_and_unicode(tmp_path):
    root = make_tree(tmp_path / "p")
    odd = tmp_path / "my photos ünïcødé #1 ?x=1"
    odd.mkdir()
    with Index(odd / "index %20.db") as index:
        first = index.scan([root], processes=2)
        assert first.workers == 2 and first.added == N
        shutil.copytree(root, tmp_path / "p" / "again")  # byte copies: workers must look them up
        second = index.scan([root], processes=2)
        assert second.workers == 2 and (second.reused, second.decoded) == (N, 0)
        found = index.search(processes=2)
        assert found.pairs == N
