"""The disk holding the index fills up during a scan, a search and an action: the command stops with a
clear message (exit 1), nothing is lost, and the same command completes once space is freed.
The index sits on a small tmpfs (root can mount one here and in CI; elsewhere this skips loudly)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from imgindex import Index

from helpers import contents, photo_like

pytestmark = pytest.mark.torture

FULL = "is full: free some space and run the same command again"


def imgindex(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imgindex.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def small_disk():
    place = Path(tempfile.mkdtemp(prefix="imgindex-full-"))
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(place)],
                                           capture_output=True).returncode != 0:
        shutil.rmtree(place)
        pytest.skip("LOUD: cannot mount a small tmpfs here (needs root), so a full disk is not tested")
    yield place
    subprocess.run(["umount", str(place)], check=True)
    shutil.rmtree(place)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the disk up to ``leave`` bytes free with one filler file."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free - leave
    with open(filler, "ab") as fp:
        while free > 0:
            chunk = min(free, 1 << 20)
            try:
                fp.write(b"\0" * chunk)
                fp.flush()
            except OSError:
                break
            free -= chunk
    return filler


def library(root: Path, n: int = 150) -> Path:
    for k in range(n):
        (root / "a").mkdir(parents=True, exist_ok=True)
        photo_like(k, (64, 48)).save(root / "a" / f"p{k:03d}.png")
        if k % 3 == 0:
            (root / "b").mkdir(exist_ok=True)
            shutil.copy2(root / "a" / f"p{k:03d}.png", root / "b" / f"p{k:03d} copy.png")
    return root


def stops_cleanly(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 1, run.stderr
    assert FULL in run.stderr and "Traceback" not in run.stderr and "corrupt" not in run.stderr


def test_scan_search_and_move_to_on_a_full_disk_stop_cleanly_and_finish_later(small_disk, tmp_path):
    lib, db, dest = library(tmp_path / "lib"), small_disk / "i.db", tmp_path / "dest"
    before = contents(lib)
    Index(db).close()
    filler = fill(small_disk, leave=64 << 10)  # room for a batch or two, not for 150 tensors
    stops_cleanly(imgindex("scan", lib, "--db", db, "--processes", 1, "-q"))
    with Index(db) as index:
        assert index.check().ok
    filler.unlink()
    assert imgindex("scan", lib, "--db", db, "--processes", 1, "-q").returncode == 0
    with Index(db) as index:
        assert index.count() == 200
    filler = fill(small_disk)
    stops_cleanly(imgindex("search", "--db", db, "--processes", 1, "-q", "-o", os.devnull))
    filler.unlink()
    assert imgindex("search", "--db", db, "--processes", 1, "-q", "-o", os.devnull).returncode == 0
    filler = fill(small_disk)
    stops_cleanly(imgindex("move-to", dest, "--db", db, "--yes", "-q"))
    assert contents(lib, dest) == before  # nothing lost, nothing duplicated
    filler.unlink()
    moved = imgindex("move-to", dest, "--db", db, "--yes", "-q")
    assert moved.returncode == 0, moved.stderr
    assert contents(lib, dest) == before and len(list(dest.rglob("*.png"))) == 50
    with Index(db) as index:
        assert index.check().ok


SEARCH_HERE = """
import sys
from imgindex import Index, ImgIndexError
from imgindex.compare import run
with Index(sys.argv[1]) as index:
    try:
        report = run.search(index.db, sys.argv[1], similarity=6.0, processes=1, algorithm="chunked", full=True)
    except ImgIndexError as exc:
        sys.exit(f"Error: {exc}")
    print(report.pairs)
"""


def test_a_range_search_whose_scratch_disk_is_full_stops_cleanly_and_finishes_later(small_disk, tmp_path):
    """The range search maps arrays in the temporary folder: written past a full disk, a mapping
    kills the process with SIGBUS (seen with a full /tmp); its disk space is now taken first."""
    import numpy as np
    from test_compare import adversarial_set, insert

    db = tmp_path / "i.db"
    with Index(db) as index:
        insert(index, adversarial_set(np.random.default_rng(3), 600, px=50))
    filler = fill(small_disk, leave=64 << 10)  # room for the first small arrays, not for the coarse vectors
    env = {**os.environ, "TMPDIR": str(small_disk)}
    full = subprocess.run([sys.executable, "-c", SEARCH_HERE, str(db)], capture_output=True, text=True, env=env)
    assert full.returncode == 1, (full.returncode, full.stderr)  # not -7: killed by SIGBUS
    assert f"scratch folder {small_disk}" in full.stderr and "is full" in full.stderr
    assert "Traceback" not in full.stderr
    with Index(db) as index:
        assert index.check().ok
    filler.unlink()
    done = subprocess.run([sys.executable, "-c", SEARCH_HERE, str(db)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0
    assert not list(small_disk.iterdir())  # the scratch folder is gone
