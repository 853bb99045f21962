"""What goes wrong around a Dask cluster ends a command as the local path would: a scheduler killed or
frozen mid-run, Ctrl-C on ``--scheduler local``, a worker that cannot see the photos, the dask extra
missing, an address where nothing listens. Each fails with one line and no traceback, records how
the run ended, keeps what was written, and the next run without a scheduler finishes the job.

Real processes throughout: ``dask scheduler`` and ``dask worker`` started here (a worker in a mount
namespace of its own to hide the photos), imgindex commands as subprocesses, signals for real."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import imgindex
from imgindex import Index
from imgindex.cluster.calls import PING_TIMEOUT, QUIET
from imgindex.cluster.connect import ClusterError
from imgindex.compare import execute

from helpers import invoke, write_image
from test_compare import adversarial_set, insert, stored_pairs

distributed = pytest.importorskip("distributed", reason="the dask extra is part of the test install: "
                                                          'pip install -e ".[test]"')
import psutil  # noqa: E402  (a dependency of distributed)

IMGINDEX = [sys.executable, "-m", "imgindex.cli"]
REPO = Path(imgindex.__file__).resolve().parents[1]
N_MANY = 1500  # tiny files: a cluster scan of them lasts a few seconds, long enough to break into


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """N_MANY distinct small PNGs in four folders, shared read-only by the tests that interrupt a scan."""
    root = tmp_path_factory.mktemp("many")
    for k in range(N_MANY):
        write_image(root / f"d{k % 4}" / f"{k:04d}.png", seed=k, size=(32, 24))
    return root


# -- a cluster of real processes ---------------------------------------------------------------------


@dataclass
class DaskProcesses:
    scheduler: subprocess.Popen
    address: str
    workers: list[subprocess.Popen]


@contextmanager
def dask_cluster(folder: Path, *, worker_prefix: tuple[str, ...] = ()):
    """``dask scheduler`` on 127.0.0.1 and one single-threaded ``dask worker``, both killed on exit.
    ``worker_prefix``: a command the worker runs under (``unshare ... sh -c``, ending in ``exec "$@"``)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    address_file, procs = folder / "scheduler.json", []
    try:
        with open(folder / "scheduler.log", "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--no-dashboard", "--scheduler-file", str(address_file)], stdout=log, stderr=log, cwd=folder, env=env))
        address = _wait_for(lambda: address_file.stat().st_size and json.loads(address_file.read_text())["address"],
                            procs[0], folder / "scheduler.log")
        worker_log = folder / "worker.log"
        with open(worker_log, "wb") as log:
            procs.append(subprocess.Popen(
                [*worker_prefix, sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                 "--no-nanny", "--no-dashboard"], stdout=log, stderr=log, cwd=folder, env=env))
        _wait_for(lambda: b"Registered to" in worker_log.read_bytes(), procs[1], worker_log)
        yield DaskProcesses(procs[0], address, procs[1:])
    finally:
        for proc in procs:
            proc.kill()  # also wakes a stopped one for good
            proc.wait()


def _wait_for(ready, proc: subprocess.Popen, log: Path, timeout: float = 30):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            if value := ready():
                return value
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{log.stem} did not start (exit {proc.poll()}):\n{log.read_text(errors='replace')}")


def wait_for_rows(db: Path, proc: subprocess.Popen, deadline: float = 60) -> int:
    """The images committed once the command's first batch is written (before it ends)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end and proc.poll() is None:
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
                if n := conn.execute("SELECT count(*) FROM images").fetchone()[0]:
                    return n
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"the scan wrote no rows before it ended (exit {proc.poll()}): {proc.communicate()}")


def query(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def only_line(stderr: str) -> str:
    """The command's one line of error: nothing else on stderr, no traceback from imgindex or Dask."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


# -- 1. a lost scheduler -----------------------------------------------------------------------------


@pytest.mark.parametrize("sig, why, within", [
    # killed: its connections close, and the client hears of it at once
    (signal.SIGKILL, "the connection to it was lost", 15),
    # frozen (or its machine gone silent): the connections stay open, the kernel still acknowledging
    # what is sent; only a ping left unanswered tells
    (signal.SIGSTOP, f"it did not answer for {PING_TIMEOUT:.0f} s", QUIET + PING_TIMEOUT + 10),
], ids=["killed", "frozen"])
def test_a_scan_whose_scheduler_is_lost_fails_in_one_line_keeps_its_rows_and_the_next_scan_finishes(
        many, tmp_path, sig, why, within):
    db = tmp_path / "i.db"
    with dask_cluster(tmp_path / "cluster") as cluster:
        proc = subprocess.Popen([*IMGINDEX, "scan", str(many), "--db", str(db), "--scheduler", cluster.address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_rows(db, proc)
            cluster.scheduler.send_signal(sig)
            lost_at = time.monotonic()
            _, stderr = proc.communicate(timeout=within + 30)
            took = time.monotonic() - lost_at
        finally:
            proc.kill()  # a scan still waiting on its lost scheduler
            proc.wait()
    assert proc.returncode == 1, stderr
    line = only_line(stderr)
    assert f"Lost the Dask scheduler at {cluster.address} ({why})" in line
    assert "Everything written before is kept" in line
    assert took < within, f"the scan took {took:.1f} s to notice its scheduler was gone"
    assert query(db, "SELECT status FROM scans") == [("failed",)]  # not left 'running'
    kept = query(db, "SELECT count(*) FROM images")[0][0]
    assert 0 < kept < N_MANY

    resumed = invoke("scan", many, "--db", db, "--processes", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert query(db, "SELECT status, unchanged, decoded FROM scans ORDER BY id DESC LIMIT 1") == [
        ("completed", kept, N_MANY - kept)]  # only the rest decoded
    with Index(tmp_path / "plain.db") as plain:
        plain.scan([many], processes=1)
    facts = "SELECT path, content_hash, width, height FROM images ORDER BY path"
    assert query(db, facts) == query(tmp_path / "plain.db", facts) and len(query(db, facts)) == N_MANY


def test_a_search_whose_scheduler_is_killed_fails_is_marked_failed_and_the_next_search_finds_every_pair(tmp_path,
                                                                                                monkeypatch):
    monkeypatch.setattr(execute, "INLINE_WORK", 20_000_000)  # big enough for the cluster
    tensors = adversarial_set(np.random.default_rng(11), 2400, px=8)
    options = dict(similarity=30, rotate=True, mirror=True, same_dim=False, chunksize=40, processes=1)
    with Index(tmp_path / "plain.db") as plain:
        insert(plain, tensors)
        expected = stored_pairs(plain, plain.search(**options).search_id)
    assert len(expected) > 100
    working, reported = threading.Event(), []

    def progress(p):
        reported.append(p)
        working.set()

    with dask_cluster(tmp_path / "cluster") as cluster, Index(tmp_path / "i.db") as index:
        insert(index, tensors)

        def kill_when_working():
            working.wait(60)
            cluster.scheduler.kill()

        killer = threading.Thread(target=kill_when_working)
        killer.start()
        try:
            with pytest.raises(ClusterError) as lost:
                index.search(**options, scheduler=cluster.address, progress=progress)
        finally:
            working.set()
            killer.join()
        assert reported and reported[-1].done < reported[-1].total  # killed mid-search
        assert f"Lost the Dask scheduler at {cluster.address}" in str(lost.value)
        assert "Everything written before is kept" in str(lost.value)
        assert query(tmp_path / "i.db", "SELECT status FROM searches") == [("failed",)]
        again = index.search(**options)  # no scheduler: the local pool, from the start (a failed run is no base)
        assert not again.incremental
        assert stored_pairs(index, again.search_id) == expected
    assert query(tmp_path / "i.db", "SELECT status FROM searches ORDER BY id") == [("failed",), ("completed",)]


# -- 2. Ctrl-C on --scheduler local ------------------------------------------------------------------


def alive(procs: set[psutil.Process]) -> list[str]:
    """Those still running (a zombie has ended), as their command lines."""
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(proc.cmdline()))
        except psutil.NoSuchProcess:
            pass
    return left


def test_ctrl_c_on_a_local_cluster_scan_exits_130_keeps_its_rows_and_leaves_no_cluster_process(many, tmp_path):
    db = tmp_path / "i.db"
    proc = subprocess.Popen([*IMGINDEX, "scan", str(many), "--db", str(db), "--scheduler", "local", "--processes", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_rows(db, proc)
        cluster = set(psutil.Process(proc.pid).children(recursive=True))
        commands = [" ".join(p.cmdline()) for p in cluster]
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the whole foreground group
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert any("imgindex.cluster.host" in c for c in commands) and len(commands) >= 2, commands  # and a worker
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Interrupted. Everything read so far is kept; run the same command again to continue." in stderr
    assert query(db, "SELECT status FROM scans") == [("interrupted",)]
    kept = query(db, "SELECT count(*) FROM images")[0][0]
    assert 0 < kept < N_MANY
    end = time.monotonic() + 10
    while alive(cluster) and time.monotonic() < end:
        time.sleep(0.1)
    assert alive(cluster) == [], "cluster processes outlived the command"

    resumed = invoke("scan", many, "--db", db, "--processes", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert query(db, "SELECT status, unchanged, decoded FROM scans ORDER BY id DESC LIMIT 1") == [
        ("completed", kept, N_MANY - kept)]


# -- 3. a worker that cannot see the photos ----------------------------------------------------------


def hidden_from(photos: Path) -> tuple[str, ...]:
    """A command prefix running the rest in a mount namespace where ``photos`` is an empty tmpfs: a
    worker on another machine without the photo share mounted."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("LOUD: a private mount namespace needs root and util-linux's unshare (here: "
                    f"euid {os.geteuid()}, unshare {unshare}), so a worker that cannot see the photos "
                    "(unreadable_on_worker) goes untested")
    trial = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c",
                            f'mount -t tmpfs none "{photos}"'], capture_output=True, text=True)
    if trial.returncode != 0:
        pytest.skip(f"LOUD: unshare --mount failed here ({trial.stderr.strip()}), so a worker that cannot see the "
                    "photos (unreadable_on_worker) goes untested")
    return (unshare, "--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"',
            str(photos))


def test_files_a_worker_cannot_see_are_scan_errors_saying_why_never_gone_and_the_next_scan_reads_them(tmp_path):
    photos = tmp_path / "photos"
    for k in range(4):
        write_image(photos / f"old{k}.png", seed=k)
    share = photos / "share"  # mounted under the scanned folder here, not on the worker's machine
    share.mkdir()
    db = tmp_path / "i.db"
    with Index(db) as index:
        index.scan([photos], processes=1)
        before = query(db, "SELECT id, path, content_hash FROM images ORDER BY id")
        new = [write_image(share / ("sub" if k % 2 else "") / f"new{k}.png", seed=10 + k) for k in range(6)]
        with dask_cluster(tmp_path / "cluster", worker_prefix=hidden_from(share)) as cluster:
            report = index.scan([photos], scheduler=cluster.address)
        assert report.status == "completed" and report.executor.startswith("dask")
        assert (report.vanished, report.removed, report.decoded, report.failed) == (0, 0, 0, len(new))
        errors = query(db, "SELECT path, error_class, message FROM scan_errors ORDER BY path")
        assert [path for path, _, _ in errors] == sorted(str(p) for p in new)
        for _, error_class, message in errors:
            assert error_class == "unreadable_on_worker"
            assert "cannot find this file, which this machine can" in message
            assert "every worker must see the photos at the same path" in message
        assert query(db, "SELECT id, path, content_hash FROM images ORDER BY id") == before  # nothing gone

        again = index.scan([photos], processes=1)  # retried, not stuck as failed
        assert (again.decoded, again.failed, again.unchanged) == (len(new), 0, len(before))
        assert query(db, "SELECT count(*) FROM scan_errors") == [(0,)]
        assert query(db, "SELECT count(*) FROM images") == [(len(before) + len(new),)]


def test_a_scan_whose_folder_a_worker_cannot_see_stops_before_it_starts_naming_it(tmp_path):
    photos = tmp_path / "photos"
    for k in range(3):
        write_image(photos / f"p{k}.png", seed=k)
    db = tmp_path / "i.db"
    with dask_cluster(tmp_path / "cluster", worker_prefix=hidden_from(photos)) as cluster:
        ran = subprocess.run([sys.executable, "-m", "imgindex", "scan", str(photos), "--db", str(db),
                              "--scheduler", cluster.address], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert f"cannot see {photos}: every worker must see the photos at the same path" in ran.stderr
    assert query(db, "SELECT count(*) FROM scans") == [(0,)]  # nothing started, nothing to settle
    assert query(db, "SELECT count(*) FROM images") == [(0,)]


# -- 4. the dask extra not installed -----------------------------------------------------------------

WITHOUT_DISTRIBUTED = "import sys; sys.modules['distributed'] = None; from imgindex.cli import cli; cli()"


def without_distributed(*args, env=None) -> subprocess.CompletedProcess:
    """``imgindex ARGS`` in an interpreter where ``import distributed`` fails, as without the extra."""
    return subprocess.run([sys.executable, "-c", WITHOUT_DISTRIBUTED, *map(str, args)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("how", ["--scheduler local", "IMGINDEX_SCHEDULER=local", "--scheduler tcp://HOST:8786"])
def test_without_the_dask_extra_a_scheduler_says_how_to_install_it_in_one_line(photos, tmp_path, how):
    db = tmp_path / "i.db"
    option = ["--scheduler", how.split()[1].replace("HOST", "127.0.0.1")] if how.startswith("--") else []
    env = {"IMGINDEX_SCHEDULER": "local"} if how.startswith("IMGINDEX") else {"IMGINDEX_SCHEDULER": ""}
    run = without_distributed("scan", photos, "--db", db, *option, env=env)
    assert run.returncode == 1, run.stderr
    assert 'pip install "imgindex[dask]"' in only_line(run.stderr)
    assert query(db, "SELECT count(*) FROM scans WHERE status = 'running'") == [(0,)]


def test_without_the_dask_extra_and_no_scheduler_scan_and_find_work(photos, tmp_path):
    db = tmp_path / "i.db"
    env = {"IMGINDEX_SCHEDULER": ""}
    scan = without_distributed("scan", photos, "--db", db, "--processes", "1", env=env)
    assert scan.returncode == 0 and "Traceback" not in scan.stderr, scan.stderr
    assert query(db, "SELECT count(*) FROM images") == [(6,)]
    find = without_distributed("find", photos, "--db", db, "--processes", "1", "--format", "json", env=env)
    assert find.returncode == 0 and "Traceback" not in find.stderr, find.stderr
    assert query(db, "SELECT status, executor FROM scans") == [("completed", "local pool (1 processes)")] * 2


# -- 5. a bad address ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command, address, says", [
    ("scan", "nonsense", "A scheduler is 'local' or an address like tcp://HOST:8786 (got 'nonsense')"),
    ("scan", "tcp://127.0.0.1:1", "Could not reach the Dask scheduler at tcp://127.0.0.1:1: [Errno"),
    ("scan", "tcp://127.0.0.1", "A scheduler is 'local' or an address like tcp://HOST:8786 (missing port number"),
    ("search", "tcp://127.0.0.1:1", "Could not reach the Dask scheduler at tcp://127.0.0.1:1"),
    ("find", "tcp://127.0.0.1:1", "Could not reach the Dask scheduler at tcp://127.0.0.1:1"),
])
def test_a_bad_scheduler_address_fails_at_once_in_one_line_leaving_no_running_row(photos, tmp_path, command, address,
                                                                                  says):
    db = tmp_path / "i.db"
    with Index(db) as index:  # an index with a finished scan and search, as a later run meets it
        index.scan([photos], processes=1)
        index.search(processes=1)
    started = time.monotonic()
    run = subprocess.run([*IMGINDEX, command, *([photos] if command != "search" else []), "--db", db,
                          "--scheduler", address], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started  # to the end of the process: a Client left behind would hold it 60 s
    assert run.returncode == 1, run.stderr
    line = only_line(run.stderr)
    assert says in line and ("Connection refused" in line) == address.endswith(":1")
    assert took < 5, f"{took:.1f} s to say the address is bad"  # a refused connection was retried for 30 s
    for table in ("scans", "searches"):
        assert query(db, f"SELECT status FROM {table}") == [("completed",)]  # no row 'running', none added
