"""The scripts in examples/ run as documented (docs are tested)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import invoke

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


def test_sql_examples_run_and_answer(tmp_path):
    """The queries in examples/sql (the README's) run on a real index and say true things."""
    demo = tmp_path / "demo"
    subprocess.run([sys.executable, EXAMPLES / "make_demo_photos.py", demo, "--originals", "16", "--size", "256"],
                   capture_output=True, check=True)
    db = tmp_path / "photos.db"
    found = invoke("find", demo, "--db", db, "--similarity", "similar", "-q")
    assert found.returncode == 0, found.stderr
    conn = sqlite3.connect(db)
    distinct = conn.execute(  # groups of two different files (not byte copies)
        "SELECT g.group_id, min(g.path), max(g.path) FROM match_groups g JOIN images i ON i.id = g.image_id"
        " GROUP BY group_id HAVING count(*) = 2 AND count(DISTINCT i.content_hash) = 2 ORDER BY group_id").fetchall()
    members, others = list(distinct[0][1:]), distinct[1][1:]
    assert invoke("keep", *members, "--db", db).returncode == 0  # two pinned in one group: both kept
    group = conn.execute("SELECT group_id FROM match_groups WHERE path = ?", [members[0]]).fetchone()[0]
    assert invoke("ignore", *others, "--db", db).returncode == 0
    answers = {}
    for sql in sorted((EXAMPLES / "sql").glob("*.sql")):
        answers[sql.stem] = conn.execute(sql.read_text()).fetchall()
    assert set(answers) == {"largest_groups", "space_reclaimable", "matches_across_folders", "pairs_since_yesterday",
                            "never_matched", "decisions_in_force", "groups_keeping_several", "pairs_set_aside"}
    lower = conn.execute("SELECT i.size FROM group_members g JOIN images i ON i.id = g.image_id"
                         " WHERE g.is_keeper = 0 AND g.search_id = (SELECT max(id) FROM searches)"
                         " AND i.path != ?", [members[1]]).fetchall()  # not the second pinned image""")
    assert [(d[1], d[2]) for d in answers["decisions_in_force"]] == [("keep", members[0]), ("keep", members[1]),
                                                                      ("not-duplicates", others[0]),
                                                                      ("not-duplicates", others[1])]
    assert [(g, n) for g, n, _ in answers["groups_keeping_several"]] == [(group, 2)]
    assert [(a, b) for a, b, _ in answers["pairs_set_aside"]] in ([others], [others[::-1]])
    assert answers["space_reclaimable"][0] == (len(lower), sum(s for (s,) in lower) / 1e9)
    n_pairs = conn.execute("SELECT count(*) FROM match_pairs").fetchone()[0]
    assert n_pairs > 0 and len(answers["pairs_since_yesterday"]) == n_pairs  # all found just now
    grouped = sum(n for _, n in answers["largest_groups"])
    never = len(answers["never_matched"])
    assert grouped + never == conn.execute("SELECT count(*) FROM images").fetchone()[0]


def test_notebook_runs_cell_by_cell_as_a_script(tmp_path):
    """examples/notebook.py: index, search, SQL, the report, a move plan; it changes no photo."""
    out = subprocess.run([sys.executable, EXAMPLES / "notebook.py", tmp_path], capture_output=True, text=True,
                         check=True)
    photos = tmp_path / "demo-photos"
    conn = sqlite3.connect(tmp_path / "photos.db")
    indexed = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    assert f"{indexed} images indexed, 2 could not be read" in out.stdout
    groups = conn.execute("SELECT count(DISTINCT group_id) FROM match_groups").fetchone()[0]
    assert groups > 0 and f"{groups} groups" in out.stdout
    assert (tmp_path / "report.html").stat().st_size > 10_000
    lower = conn.execute("SELECT count(*) FROM match_groups WHERE is_keeper = 0").fetchone()[0]
    assert f"would move {lower} files" in out.stdout
    assert not (tmp_path / "duplicates").exists()  # a plan only
    assert conn.execute("SELECT count(*) FROM actions").fetchone()[0] == 0
    assert all(Path(p).exists() for (p,) in conn.execute("SELECT path FROM images"))
    assert photos.is_dir()
