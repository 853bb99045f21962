"""The imgindex command as a user runs it: in this process through click's CliRunner (helpers.invoke),
and as a real process wherever a terminal or a signal is the point."""

from __future__ import annotations

import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgindex.cli import cli

from helpers import invoke

IMGINDEX = [sys.executable, "-m", "imgindex.cli"]


def test_scan_prints_a_summary_and_fills_the_default_db(photos, tmp_path):
    result = invoke("scan", photos, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "files seen" in result.stdout and "The index holds 6 images." in result.stdout
    decoded = next(line for line in result.stdout.splitlines() if line.strip().startswith("decoded"))
    assert decoded.split()[1] == "6" and " s of CPU here; hashing " in decoded  # where the time went
    db = sqlite3.connect(tmp_path / "imgindex.db")
    assert db.execute("SELECT count(*) FROM images").fetchone() == (6,)
    assert result.stderr == ""  # not a terminal: no progress bar


def test_quiet_scan_prints_nothing(photos, tmp_path):
    result = invoke("scan", photos, "--db", tmp_path / "q.db", "--quiet", "--processes", "1")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_progress_bar_on_a_terminal(photos, tmp_path):
    # a process of its own: stderr must be a real terminal (a pty) for the bar to show
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*IMGINDEX, "scan", str(photos), "--db", str(tmp_path / "p.db")],
        stdout=subprocess.PIPE,
        stderr=secondary,
        text=True,
    )
    os.close(secondary)
    stdout, _ = proc.communicate(timeout=120)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    stderr = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "Scanning:" in stderr and "decoded" in stderr
    assert "files seen" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["scan", "{tmp}/missing"], "does not exist"),
        (["scan", "{photos}", "--px-size", "5"], "5 is not in the range 10<=x<=5000"),
        (["scan", "{photos}", "--processes", "0"], "0 is not in the range x>=1"),
        (["scan", "{photos}", "--db", "{tmp}/corrupt.db"], "not a usable imgindex database"),
        (["scan", "{photos}/img0.jpg"], "is a file"),
    ],
)
def test_bad_input_gives_a_message_not_a_traceback(photos, tmp_path, args, message):
    (tmp_path / "corrupt.db").write_bytes(b"garbage" * 1000)
    result = invoke(*[a.format(tmp=tmp_path, photos=photos) for a in args], cwd=tmp_path)
    assert result.returncode in (1, 2)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_every_command_has_help():
    from click.testing import CliRunner

    runner = CliRunner()
    for name, command in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and len(command.help or "") > 20, name


def test_readme_documents_every_command_and_option():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, command in cli.commands.items():
        assert f"imgindex {name}" in readme, name
        for param in command.params:
            for opt in param.opts + param.secondary_opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in readme, f"{name} {opt}"


# -- interrupting a scan ------------------------------------------------------------------------

N_SLOW = 240


@pytest.fixture(scope="module")
def slow_tree(tmp_path_factory) -> Path:
    """Enough full-size PNGs that a one-process scan takes a few seconds."""
    root = tmp_path_factory.mktemp("slow")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)
    for i in range(N_SLOW):
        arr = base.copy()
        arr[(i // 40) * 10 : (i // 40) * 10 + 10, (i % 40) * 20 : (i % 40) * 20 + 20] = 255 - i % 256
        Image.fromarray(arr).save(root / f"p{i:04d}.png", compress_level=1)
    return root


def wait_for_rows(db: Path, at_least: int, proc: subprocess.Popen, deadline: float = 60) -> int:
    end = time.monotonic() + deadline
    while time.monotonic() < end and proc.poll() is None:
        try:
            with sqlite3.connect(db, timeout=1) as conn:
                n = conn.execute("SELECT count(*) FROM images").fetchone()[0]
            if n >= at_least:
                return n
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError("the scan did not write rows in time (or finished too fast to interrupt)")


def check_consistent(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = conn.execute(
            "SELECT count(*) FROM images LEFT JOIN tensors ON id = image_id WHERE image_id IS NULL"
        ).fetchone()[0]
        assert orphans == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig, expected_rc, status", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 130, "interrupted"), (signal.SIGKILL, -9, "running")])
def test_interrupted_scan_leaves_a_consistent_db_and_the_next_one_finishes(slow_tree, tmp_path, sig, expected_rc, status):
    db = tmp_path / "i.db"
    proc = subprocess.Popen(
        [*IMGINDEX, "scan", str(slow_tree), "--db", str(db), "--processes", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_rows(db, 1, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == expected_rc, stderr
    assert "Traceback" not in stderr
    if sig != signal.SIGKILL:
        assert "run the same command again to continue" in stderr
    check_consistent(db)
    with sqlite3.connect(db) as conn:
        kept = conn.execute("SELECT count(*) FROM images").fetchone()[0]
        assert conn.execute("SELECT status FROM scans").fetchone()[0] == status
    assert 0 < kept < N_SLOW
    result = invoke("scan", slow_tree, "--db", db, "--processes", "2")  # the resumed scan needs no signal
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == N_SLOW
        last = conn.execute("SELECT status, unchanged, decoded FROM scans ORDER BY id DESC LIMIT 1").fetchone()
    assert last == ("completed", kept, N_SLOW - kept)
