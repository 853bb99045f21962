"""Ctrl-C can land anywhere, also between sqlite-utils' BEGIN and the block that owns it, leaving a
transaction open. The interrupted run must still record how it ended (committed, visible to
others) and settle its files, instead of nesting every later write in that transaction.

The state is made for real: a progress callback opens the transaction and raises, at the point
where a signal would; a reader on its own connection checks what was committed."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from imgindex import Index

from helpers import write_image


def begin_then_interrupt(index: Index, after: int):
    calls = []

    def progress(_p) -> None:
        calls.append(1)
        if len(calls) == after:
            index.db.conn.execute("BEGIN")  # what the signal leaves behind, inside atomic()
            raise KeyboardInterrupt

    return progress


def committed(db, sql: str):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_an_action_interrupted_with_a_transaction_open_still_settles_and_records_it(tmp_path):
    root = tmp_path / "photos"
    write_image(root / "keep" / "a.jpg", seed=1)
    for k in range(4):
        (root / f"copy{k}").mkdir()
        shutil.copy2(root / "keep" / "a.jpg", root / f"copy{k}" / "a.jpg")
    db = tmp_path / "index.db"
    with Index(db) as index:
        index.scan([root], processes=1)
        index.search(processes=1)
        plan = index.plan_move_to(tmp_path / "dest")
        with pytest.raises(KeyboardInterrupt):  # not "Safety level may not be changed inside a transaction"
            index.apply(plan, progress=begin_then_interrupt(index, after=2))
    assert committed(db, "SELECT status FROM action_runs") == [("interrupted",)]
    assert committed(db, "SELECT count(*) FROM actions WHERE outcome = 'planned'") == [(0,)]
    done = committed(db, "SELECT destination FROM actions WHERE outcome = 'done'")
    assert len(done) == 2 and all((tmp_path / "dest").joinpath(*p.split("/")[-2:]).exists() for (p,) in done)


def test_a_scan_interrupted_with_a_transaction_open_records_it(tmp_path):
    root = tmp_path / "photos"
    for k in range(5):
        write_image(root / f"{k}.png", seed=k)
    db = tmp_path / "index.db"
    with Index(db) as index, pytest.raises(KeyboardInterrupt):
        index.scan([root], processes=1, progress=begin_then_interrupt(index, after=3))
    assert committed(db, "SELECT status FROM scans") == [("interrupted",)]
    with Index(db) as index:  # and the next scan finishes the job
        assert index.scan([root], processes=1).status == "completed" and index.count() == 5


def test_a_search_interrupted_with_a_transaction_open_records_it(tmp_path):
    root = tmp_path / "photos"
    for k in range(3):
        write_image(root / f"{k}.png", seed=k)
        shutil.copy2(root / f"{k}.png", root / f"{k}-copy.png")
    db = tmp_path / "index.db"
    with Index(db) as index:
        index.scan([root], processes=1)
        with pytest.raises(KeyboardInterrupt):
            index.search(processes=1, progress=begin_then_interrupt(index, after=1))
    assert committed(db, "SELECT status FROM searches") == [("interrupted",)]
