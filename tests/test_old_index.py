"""An index made before the package was laid out by stage (and before decisions) opens, is upgraded
by exactly the decisions, reviews, search-space, shared-rows and executor migrations, keeps every row (``pairs`` and
``group_members`` now views over the rows searches share, with the same columns), and reads the same."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from imgindex import Index

DUMP = Path(__file__).parent / "data" / "index-0.1.0-before-stages.sql"
TABLES = ("_sqlite_migrations", "settings", "images", "tensors", "scan_errors", "scans", "searches", "pairs",
          "group_members", "search_keys", "actions", "action_runs")
ROOT = "/tmp/oldidx/photos"  # where the pictures were when the old version indexed them


def rows(db_path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db_path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        conn.close()


def test_an_index_from_before_the_restructuring_opens_unchanged_and_reads_the_same(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(DUMP.read_text())
    conn.close()
    before = rows(db)
    assert len(before["_sqlite_migrations"]) == 7 and len(before["images"]) == 5
    with Index(db) as index:
        assert index.px_size == 10 and index.count() == 5
        assert index.result() == {f"{ROOT}/a.jpg": [[f"{ROOT}/copy of a.jpg", 0.0]],
                                  f"{ROOT}/b.png": [[f"{ROOT}/sub/b-again.png", 0.0]]}
        assert index.lower_quality() == [f"{ROOT}/copy of a.jpg", f"{ROOT}/sub/b-again.png"]
        assert index.status().last_search["groups"] == 2
    after = rows(db)
    since = sorted({m[2] for m in after["_sqlite_migrations"]} - {m[2] for m in before["_sqlite_migrations"]})
    assert since == ["0008_decisions", "0009_reviews", "0010_search_keys_orbits", "0011_shared_rows",
                     "0012_executor", "0013_signals", "0014_timings", "0015_signal_points"]
    for table in set(TABLES) - {"_sqlite_migrations", "group_members", "searches", "search_keys", "scans", "pairs"}:
        assert after[table] == before[table], table
    assert [r[:-2] for r in after["pairs"]] == before["pairs"]  # signal, score: new columns at the end
    assert [r[:-2] for r in after["scans"]] == before["scans"]  # executor, timings: new columns, NULL
    assert {r[-2:] for r in after["scans"]} == {(None, None)}
    assert [r[:-2] for r in after["search_keys"]] == before["search_keys"]  # orbits, sample: new columns, NULL
    # new columns at the end, old values kept; a keeper's reason is 'rule', an image to act on has none
    assert [r[:-1] for r in after["group_members"]] == before["group_members"]
    assert {r[3]: r[-1] for r in after["group_members"]} == {1: "rule", 0: None}
    assert [r[: len(before["searches"][0])] for r in after["searches"]] == before["searches"]
    # each old search is a chain of its own, and nothing of it was edited since; executor, signals, timings unknown
    assert {r[-5:] for r in after["searches"]} == {(r[0], 0, None, None, None) for r in after["searches"]}
    with Index(db) as index:  # pairs found before signals existed were matched by pixels, their score the MSE
        assert {(s, score == mse) for s, score, mse in index.db.execute("SELECT signal, score, mse FROM pairs")} == {
            ("pixels", True)}
    with Index(db) as index:  # and the stages work on it: a new search finds the same from the stored tensors
        found = index.search(similarity="similar", full=True, processes=1)
        assert (found.pairs, found.groups) == (2, 2)
        assert index.result() == {f"{ROOT}/a.jpg": [[f"{ROOT}/copy of a.jpg", 0.0]],
                                  f"{ROOT}/b.png": [[f"{ROOT}/sub/b-again.png", 0.0]]}


def test_decisions_work_on_an_upgraded_index_and_outlive_reopening(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(DUMP.read_text())
    conn.close()
    pinned = {f"{ROOT}/copy of a.jpg": [[f"{ROOT}/a.jpg", 0.0]], f"{ROOT}/b.png": [[f"{ROOT}/sub/b-again.png", 0.0]]}
    with Index(db) as index:  # the pictures are gone from disk; decisions only need the index
        assert index.keep([f"{ROOT}/copy of a.jpg"]).groups == 2
        assert index.result() == pinned
    with Index(db) as index:
        assert [d.kind for d in index.decisions()] == ["keep"]
        index.search(similarity="similar", full=True, processes=1)
        assert index.result() == pinned
