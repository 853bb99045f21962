"""Scans and searches on a real Dask cluster (``imgindex.cluster``) give exactly what the local worker
pool gives: the same tensors, pairs (MSE, rotation, mirroring), groups and keepers, on real image
files and on stored vectors, for every plan (classic chunk pairs, identical keys, the range search,
a few new images through the point index), incremental searches included; a worker killed in the
middle of a search changes nothing; ``--scheduler local`` works from scripts that would break a
LocalCluster started in their own process."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgindex import Index
from imgindex.compare import execute

from helpers import invoke, photo_like, write_image
from test_compare import adversarial_set, brute_force, insert, stored_pairs
from test_space import _tight_set

distributed = pytest.importorskip("distributed", reason="the dask extra is part of the test install: "
                                                          'pip install -e ".[test]"')


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two worker processes, as the issue asks, and a client on it."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                                  host="127.0.0.1", silence_logs=40) as local:
        with distributed.Client(local, set_as_default=False) as client:
            yield client


@pytest.fixture(autouse=True)
def compare_on_the_cluster(request, monkeypatch):
    """Searches this small go to the cluster too: a search with less work than the local pool would
    start its workers for runs in this process whatever the executor (tested on its own)."""
    if "small_search" not in request.node.name:
        monkeypatch.setattr(execute, "INLINE_WORK", 0)


def test_a_search_is_cut_into_a_few_calls_per_worker_each_task_in_one():
    """Per call, about the work of a worker's share / CALLS_PER_WORKER, within the limits; tasks in order."""
    from types import SimpleNamespace

    from imgindex.compare.on_cluster import (BOUNDS_WORK, BOUNDS_WORK_MOST, CALLS_PER_WORKER, _batches,
                                             call_work)

    tasks = [SimpleNamespace(work=int(w)) for w in np.random.default_rng(5).integers(1, 400_000, 200)]  # 40M pairs
    total = sum(t.work for t in tasks)
    for workers in (1, 2, 8, 80):
        per_call = call_work(tasks, workers)
        assert per_call == min(max(total // (workers * CALLS_PER_WORKER), BOUNDS_WORK), BOUNDS_WORK_MOST)
        batches = _batches(tasks, per_call)
        assert [t for batch in batches for t in batch] == tasks
        for batch in batches[:-1]:  # each closed as soon as it reached the call's work
            assert sum(t.work for t in batch) >= per_call > sum(t.work for t in batch[:-1])
    assert len(_batches(tasks, call_work(tasks, 2))) <= 2 * CALLS_PER_WORKER + 1
    assert call_work([SimpleNamespace(work=10)] * 5, 2) == BOUNDS_WORK
    assert call_work([SimpleNamespace(work=10**10)], 0) == BOUNDS_WORK_MOST


def library(root: Path) -> Path:
    """Photos and their copies in two folders: byte copies, re-encodes, turned, mirrored and resized copies."""
    for k in range(8):
        folder = root / ("a" if k % 2 else "b")
        original = write_image(folder / f"p{k}.png", seed=100 + k, size=(96, 72))
        picture = photo_like(100 + k, (96, 72))
        if k % 4 == 0:
            shutil.copyfile(original, root / "b" / f"p{k}-copy.png")
        if k % 4 == 1:
            picture.save(root / "a" / f"p{k}-q90.jpg", quality=90)
        if k % 4 == 2:
            picture.transpose(Image.Transpose.ROTATE_90).save(root / "a" / f"p{k}-turned.png")
        if k % 4 == 3:
            picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "b" / f"p{k}-mirror.png")
        if k < 2:
            picture.resize((48, 36), Image.Resampling.LANCZOS).save(root / "b" / f"p{k}-half.png")
    return root


def by_path(index: Index, search_id: int) -> tuple[dict, set]:
    """A search's pairs and groups by path, as a user sees them (ids follow the order files were read in,
    which differs between runs: each pair as seen from its first path)."""
    pairs = {}
    for a, b, mse, rot, mir in index.db.execute(
            "SELECT ia.path, ib.path, p.mse, p.rotation, p.mirrored FROM pairs p JOIN images ia ON ia.id = p.image_a"
            " JOIN images ib ON ib.id = p.image_b WHERE p.search_id = ?", [search_id]):
        if a > b:
            a, b, rot = b, a, rot if mir else (360 - rot) % 360
        pairs[a, b] = (round(mse, 9), rot, mir)
    members: dict[int, set] = {}
    for group, path, keeper, mse, rot, mir in index.db.execute(
            "SELECT g.group_id, i.path, g.is_keeper, g.mse_to_keeper, g.rotation, g.mirrored FROM group_members g"
            " JOIN images i ON i.id = g.image_id WHERE g.search_id = ?", [search_id]):
        members.setdefault(group, set()).add((path, keeper, None if mse is None else round(mse, 9), rot, mir))
    return pairs, {frozenset(m) for m in members.values()}


def indexed(index: Index) -> dict:
    return {row[0]: row[1:] for row in index.db.execute(
        "SELECT i.path, i.size, i.mtime_ns, i.width, i.height, i.format, i.content_hash, t.tensor"
        " FROM images i JOIN tensors t ON t.image_id = i.id")}


SETTINGS = [
    dict(similarity="duplicates"),
    dict(similarity="similar"),
    dict(similarity="similar", rotate=True, mirror=True, same_dim=False),
    dict(similarity=40, rotate=True, mirror=True, same_dim=False, in_folder=True),
]


def test_scan_and_search_of_real_files_on_a_cluster_equal_the_local_pool(tmp_path, cluster):
    photos = library(tmp_path / "photos")
    with Index(tmp_path / "local.db") as here, Index(tmp_path / "dask.db") as there:
        local_scan = here.scan([photos], processes=2)
        dask_scan = there.scan([photos], processes=2, scheduler=cluster)
        assert dask_scan.executor.startswith("dask tcp://127.0.0.1:") and dask_scan.workers == 2
        assert (dask_scan.added, dask_scan.failed) == (local_scan.added, local_scan.failed) == (len(indexed(here)), 0)
        assert indexed(there) == indexed(here)
        found = []
        for options in SETTINGS:
            local = here.search(**options, roots=[photos / "a", photos / "b"], processes=2, full=True)
            remote = there.search(**options, roots=[photos / "a", photos / "b"], processes=2, full=True,
                                  scheduler=cluster)
            assert remote.executor.startswith("dask") and local.executor == "local pool (2 processes)"
            assert by_path(there, remote.search_id) == by_path(here, local.search_id), options
            found.append((remote.groups, remote.pairs))
        assert found[0] == (4, 4)  # the byte copies and the turned ones (lossless, so identical turned back)
        assert found[2][0] == 8  # turned, mirrored and resized: every photo with its copies


def test_incremental_scans_and_searches_on_a_cluster_equal_the_local_pool(tmp_path, cluster):
    photos = library(tmp_path / "photos")
    with Index(tmp_path / "local.db") as here, Index(tmp_path / "dask.db") as there:
        for ix, scheduler in ((here, None), (there, cluster)):
            ix.scan([photos], processes=2, scheduler=scheduler)
            ix.search(similarity="similar", rotate=True, processes=2, scheduler=scheduler)
        write_image(photos / "a" / "new.png", seed=100)  # a copy of p0, in the other folder
        shutil.copyfile(photos / "a" / "p1.png", photos / "b" / "p1-again.png")
        os.rename(photos / "a" / "p3.png", photos / "b" / "p3-moved.png")
        for ix, scheduler in ((here, None), (there, cluster)):
            report = ix.scan([photos], processes=2, scheduler=scheduler)
            assert (report.added, report.moved) == (2, 1)
        assert indexed(there) == indexed(here)
        local = here.search(similarity="similar", rotate=True, processes=2)
        remote = there.search(similarity="similar", rotate=True, processes=2, scheduler=cluster)
        assert remote.incremental and local.incremental and remote.new_images == local.new_images == 3
        assert by_path(there, remote.search_id) == by_path(here, local.search_id)
        full = here.search(similarity="similar", rotate=True, processes=2, full=True)
        assert by_path(here, full.search_id) == by_path(there, remote.search_id)


def _vectors(tmp_path, name: str, tensors) -> Index:
    index = Index(tmp_path / f"{name}.db")
    insert(index, tensors)
    return index


@pytest.mark.parametrize("algorithm, threshold, chunksize", [
    ("classic", 0, 7),  # identical keys: many small chunks, each of one task (sent with it)
    ("classic", 30, 9),  # chunk pairs: chunks of several tasks, scattered once
    ("chunked", 30, 5),  # the range search: the bucket's arrays scattered
    ("chunked", 0, 5),
])
def test_every_plan_on_stored_vectors_equals_the_local_pool_and_brute_force(tmp_path, cluster, algorithm,
                                                                            threshold, chunksize):
    rng = np.random.default_rng(7)
    tensors = adversarial_set(rng, 60, px=8)
    here, there = _vectors(tmp_path, "local", tensors), _vectors(tmp_path, "dask", tensors)
    with here, there:
        options = dict(similarity=threshold, rotate=True, mirror=True, same_dim=False, chunksize=chunksize,
                       algorithm=algorithm, processes=2)
        from imgindex.compare import run as compare

        local = compare.search(here.db, str(here.path), **options)
        remote = compare.search(there.db, str(there.path), **options, scheduler=cluster)
        assert remote.executor.startswith("dask")
        truth = brute_force(dict(enumerate(tensors, start=1)), threshold, rotate=True, mirror=True)
        found = stored_pairs(there, remote.search_id)
        assert found == stored_pairs(here, local.search_id)
        assert set(found) == set(truth) and len(found) > 10
        for pair, (mse, rot, mir) in found.items():
            assert mse == pytest.approx(truth[pair][0], abs=1e-9)
        assert by_path(there, remote.search_id)[1] == by_path(here, local.search_id)[1]


def test_a_few_new_images_through_the_point_index_on_a_cluster_equal_the_local_pool(tmp_path, cluster):
    rng = np.random.default_rng(3)
    tensors = _tight_set(rng, 90, 8, 9)
    first, later = tensors[:70], tensors[70:]
    here, there = _vectors(tmp_path, "local", first), _vectors(tmp_path, "dask", first)
    with here, there:
        from imgindex.compare import run as compare

        options = dict(similarity=9, rotate=True, same_dim=False, algorithm="chunked", processes=2)
        compare.search(here.db, str(here.path), **options)
        compare.search(there.db, str(there.path), **options, scheduler=cluster)
        insert(here, later)
        insert(there, later)
        local = compare.search(here.db, str(here.path), **options)
        remote = compare.search(there.db, str(there.path), **options, scheduler=cluster)
        assert remote.incremental and remote.new_images == len(later)
        assert stored_pairs(there, remote.search_id) == stored_pairs(here, local.search_id)
        assert by_path(there, remote.search_id) == by_path(here, local.search_id)
        truth = brute_force(dict(enumerate(tensors, start=1)), 9, rotate=True)
        assert set(stored_pairs(there, remote.search_id)) == set(truth)


def test_a_worker_killed_during_a_search_changes_nothing(tmp_path, cluster):
    rng = np.random.default_rng(11)
    tensors = adversarial_set(rng, 2400, px=8)
    here, there = _vectors(tmp_path, "local", tensors), _vectors(tmp_path, "dask", tensors)
    before = set(cluster.scheduler_info(n_workers=-1)["workers"])
    pids = cluster.run(os.getpid)  # worker address -> pid
    killed = []

    def kill_a_busy_worker(progress):
        if killed:
            return
        busy = [address for address, keys in cluster.processing().items() if keys]
        if busy:  # a worker with a call in hand: that call must be run again elsewhere
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

    with here, there:
        from imgindex.compare import run as compare

        options = dict(similarity=30, rotate=True, mirror=True, same_dim=False, chunksize=40, algorithm="classic",
                       processes=2)
        local = compare.search(here.db, str(here.path), **options)
        remote = compare.search(there.db, str(there.path), **options, scheduler=cluster, progress=kill_a_busy_worker)
        assert killed, "no worker had a call in hand when the search reported progress"
        assert stored_pairs(there, remote.search_id) == stored_pairs(here, local.search_id)
        assert by_path(there, remote.search_id) == by_path(here, local.search_id)
        assert local.pairs > 100
    cluster.wait_for_workers(2, timeout=60)  # the nanny started a new one
    assert killed[0] not in cluster.scheduler_info(n_workers=-1)["workers"] and killed[0] in before


SCRIPT = """
from pathlib import Path
from imgindex import Index
with open({marker!r}, "a") as f:  # no main guard: a worker that re-imported this would write again
    f.write("ran\\n")
with Index({db!r}) as index:
    index.scan([{photos!r}], processes=2, scheduler="local")
    report = index.search(similarity="similar", rotate=True, mirror=True, same_dim=False, scheduler="local",
                          processes=2, full=True)
    print("groups", report.groups, report.executor)
"""


@pytest.mark.parametrize("how", ["script without a main guard", "stdin", "python -c (as a notebook: no __file__)"])
def test_scheduler_local_works_from_scripts_stdin_and_code_without_a_file(tmp_path, how):
    photos = library(tmp_path / "photos")
    marker, db = tmp_path / "ran.txt", tmp_path / "i.db"
    code = SCRIPT.format(marker=str(marker), db=str(db), photos=str(photos))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    if how == "stdin":
        run = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=180)
    elif how.startswith("python -c"):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                             timeout=180)
    else:
        (tmp_path / "dedupe.py").write_text(code)
        run = subprocess.run([sys.executable, "dedupe.py"], capture_output=True, text=True, env=env, cwd=tmp_path,
                             timeout=180)
    assert run.returncode == 0, run.stderr
    assert marker.read_text() == "ran\n"  # the script ran once: no worker re-imported it
    with Index(tmp_path / "reference.db") as reference:
        reference.scan([photos], processes=1)
        expected = reference.search(similarity="similar", rotate=True, mirror=True, same_dim=False, full=True)
    assert run.stdout.split() == ["groups", str(expected.groups), "dask", "local", "(2", "workers)"]


def test_find_on_the_local_cluster_and_status_says_what_ran_it(tmp_path):
    photos = library(tmp_path / "photos")
    db = tmp_path / "i.db"
    ran = invoke("find", photos, "--db", db, "--scheduler", "local", "--processes", "2", "--similarity", "similar",
                 "--rotate", "--mirror", "--no-same-dim", "--format", "json", "-o", tmp_path / "out.json")
    assert ran.returncode == 0, ran.stderr
    assert "on dask local (2 workers)" in ran.stderr + ran.stdout
    status = invoke("status", "--db", db)
    assert "Last scan: #1 completed" in status.stdout and "on dask local (2 workers)" in status.stdout
    assert status.stdout.count("on dask local (2 workers)") == 2  # the scan's line and the search's
    local = invoke("find", photos, "--db", tmp_path / "l.db", "--processes", "2", "--similarity", "similar",
                   "--rotate", "--mirror", "--no-same-dim", "--format", "json", "-o", tmp_path / "local.json")
    assert local.returncode == 0
    assert (tmp_path / "out.json").read_text() == (tmp_path / "local.json").read_text()
    assert "on local pool (2 processes)" in invoke("status", "--db", tmp_path / "l.db").stdout


def test_the_scheduler_can_be_named_in_the_environment(tmp_path, cluster, monkeypatch):
    photos = library(tmp_path / "photos")
    monkeypatch.setenv("IMGINDEX_SCHEDULER", cluster.scheduler.address)
    with Index(tmp_path / "i.db") as index:
        report = index.scan([photos], processes=2)
        assert report.executor == f"dask {cluster.scheduler.address} (2 workers)"
        monkeypatch.delenv("IMGINDEX_SCHEDULER")
        assert index.search(similarity="similar").executor.startswith("local pool")
        row = sqlite3.connect(index.path).execute("SELECT executor FROM scans").fetchone()
        assert row == (report.executor,)


def test_the_difpy_shaped_api_takes_a_scheduler_too(tmp_path, cluster):
    import imgindex

    photos = library(tmp_path / "photos")
    results = []
    for scheduler in (None, cluster):
        dif = imgindex.build(str(photos), show_progress=False, processes=2, scheduler=scheduler)
        found = imgindex.search(dif, similarity="similar", mirror=True, same_dim=False, show_progress=False,
                                processes=2, scheduler=scheduler)
        results.append((found.result, sorted(found.lower_quality)))
    assert results[1] == results[0] and len(results[0][0]) == 8


def test_a_small_search_runs_here_whatever_the_executor_as_the_local_pool_would(tmp_path, cluster):
    rng = np.random.default_rng(5)
    tensors = adversarial_set(rng, 60, px=8)
    here, there = _vectors(tmp_path, "local", tensors), _vectors(tmp_path, "dask", tensors)
    with here, there:
        local = here.search(similarity=30, processes=2)
        remote = there.search(similarity=30, processes=2, scheduler=cluster)
        assert local.workers == remote.workers == 0  # neither started or used any worker
        assert stored_pairs(there, remote.search_id) == stored_pairs(here, local.search_id)


def test_data_lost_with_the_only_worker_is_sent_again_and_changes_nothing(tmp_path, caplog):
    """One worker holds everything scattered: killing it loses that data for sure (the nanny starts
    a new, empty one), and the search sends it again with the calls that read it."""
    rng = np.random.default_rng(13)
    tensors = adversarial_set(rng, 2400, px=8)
    here, there = _vectors(tmp_path, "local", tensors), _vectors(tmp_path, "dask", tensors)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=50) as local, \
            distributed.Client(local, set_as_default=False) as client, here, there:
        (pid,) = client.run(os.getpid).values()
        killed = []

        def kill_the_worker(progress):
            if not killed and progress.done:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        from imgindex.compare import run as compare

        options = dict(similarity=30, rotate=True, mirror=True, same_dim=False, chunksize=40, algorithm="classic",
                       processes=2)
        local_report = compare.search(here.db, str(here.path), **options)
        remote = compare.search(there.db, str(there.path), **options, scheduler=client, progress=kill_the_worker)
        assert killed and any("died with data this search had sent it" in r.message for r in caplog.records)
        client.wait_for_workers(1, timeout=60)
        assert list(client.run(os.getpid).values()) != [pid]  # the nanny's new worker did the rest
        assert stored_pairs(there, remote.search_id) == stored_pairs(here, local_report.search_id)
        assert by_path(there, remote.search_id) == by_path(here, local_report.search_id)


def test_a_duplicates_search_starts_the_local_cluster_only_when_it_has_work_for_it(tmp_path):
    rng = np.random.default_rng(17)
    tensors = adversarial_set(rng, 200, px=8)
    here, there = _vectors(tmp_path, "local", tensors), _vectors(tmp_path, "dask", tensors)
    with here, there:
        local = here.search(similarity="duplicates", processes=2)
        remote = there.search(similarity="duplicates", processes=2, scheduler="local")  # started at first use
        assert remote.workers == 2 and remote.executor == "dask local (2 workers)"
        assert stored_pairs(there, remote.search_id) == stored_pairs(here, local.search_id) != {}
