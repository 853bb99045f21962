"""The scripts in examples/ run as documented (docs are tested)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_demo_folder_then_scan_and_query(tmp_path):
    demo = tmp_path / "demo-photos"
    made = subprocess.run(
        [sys.executable, EXAMPLES / "make_demo_photos.py", demo, "--originals", "16", "--size", "320"],
        capture_output=True, text=True, check=True,
    )
    assert "16 originals, 2 byte copies, 10 edited copies, 2 broken files" in made.stdout
    db = tmp_path / "photos.db"
    first = subprocess.run(
        [sys.executable, EXAMPLES / "scan_and_query.py", demo, "--db", db], capture_output=True, text=True, check=True
    )
    assert "28 new" in first.stdout and "2 failed" in first.stdout
    assert "copy of IMG_1000.jpg = " in first.stdout  # byte copies found by content_hash
    assert "[truncated]" in first.stdout and "[not_an_image]" in first.stdout
    second = subprocess.run(
        [sys.executable, EXAMPLES / "scan_and_query.py", demo, "--db", db], capture_output=True, text=True, check=True
    )
    assert "0 new, 28 unchanged" in second.stdout
    assert sqlite3.connect(db).execute("SELECT count(*) FROM images").fetchone() == (28,)
