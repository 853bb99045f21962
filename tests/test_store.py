"""The SQLite store: schema by migrations, upgrades that keep data, and clear refusals."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sqlite_utils import Database

from imgindex import Index, IndexOpenError, SchemaTooNewError
from imgindex.migrations import MIGRATIONS
from imgindex.db.connect import PAGE_SIZE, connect_readonly

FIRST = MIGRATIONS._migrations[0].name
SECOND = MIGRATIONS._migrations[1].name


def test_new_index_is_wal_with_busy_timeout_and_big_pages(tmp_path):
    with Index(tmp_path / "x.db") as index:
        pragma = lambda name: index.db.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") >= 5000
        assert pragma("page_size") == PAGE_SIZE
        assert pragma("foreign_keys") == 1
        applied = [m.name for m in MIGRATIONS.applied(index.db)]
        assert applied == [m.name for m in MIGRATIONS._migrations]
        for table in ("images", "tensors", "scans", "scan_errors", "settings"):
            assert index.db[table].exists()
        assert "vectors" in index.db.view_names()


def test_upgrade_from_first_migration_keeps_everything(tmp_path):
    path = tmp_path / "old.db"
    old = Database(path)
    MIGRATIONS.apply(old, stop_before=SECOND)
    assert [m.name for m in MIGRATIONS.applied(old)] == [FIRST]
    tensor = np.arange(50 * 50 * 3, dtype=np.uint32).astype(np.uint8).tobytes()
    with old.atomic():
        for i in range(3):
            old.execute(
                "INSERT INTO images (path, folder, size, mtime_ns, width, height, format, content_hash,"
                " px_size, decoder, indexed_at) VALUES (?, '/p', 10, 20, 30, 40, 'JPEG', ?, 50, 'd', 'now')",
                [f"/p/{i}.jpg", f"hash{i}"],
            )
            old.execute("INSERT INTO tensors VALUES (?, 50, ?)", [i + 1, tensor])
        old.execute("INSERT INTO settings VALUES ('px_size', '50')")
        old.execute("INSERT INTO scans (started_at, status, roots, options) VALUES ('t', 'completed', '[]', '{}')")
    before = {t: list(old[t].rows) for t in ("images", "tensors", "settings", "scans")}
    old.close()

    with Index(path) as index:  # upgrades on open, through every later step
        assert [m.name for m in MIGRATIONS.applied(index.db)] == [m.name for m in MIGRATIONS._migrations]
        after = {t: list(index.db[t].rows) for t in before}
        # every old value is still there; columns added later are empty
        assert {t: [{k: row[k] for k in old_rows[0]} for row in after[t]] for t, old_rows in before.items()} == before
        assert all(set(row) - set(before["images"][0]) == {"moved_at"} and row["moved_at"] is None
                   for row in after["images"])
        got = index.db.execute("SELECT image_id, px_size, tensor FROM vectors ORDER BY image_id").fetchall()
        assert got == [(i, 50, tensor) for i in (1, 2, 3)]
        assert index.db.execute("SELECT id FROM images WHERE content_hash = 'hash1'").fetchone() == (2,)


def test_opening_twice_applies_nothing_new(tmp_path):
    Index(tmp_path / "x.db").close()
    with Index(tmp_path / "x.db") as index:
        count = index.db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0]
        assert count == len(MIGRATIONS._migrations)


def test_database_from_a_newer_imgindex_is_refused(tmp_path):
    path = tmp_path / "future.db"
    Index(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('imgindex', '9999_future', 'x')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNewError, match="newer imgindex.*9999_future"):
        Index(path)


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"SQLite format 3\0" + b"\xff" * 4000])
def test_corrupt_database_is_refused_clearly(tmp_path, content):
    path = tmp_path / "corrupt.db"
    path.write_bytes(content)
    with pytest.raises(IndexOpenError, match="not a usable imgindex database"):
        Index(path)
    assert path.read_bytes() == content  # never "repaired" by overwriting


def test_db_path_must_be_a_file_in_an_existing_folder(tmp_path):
    with pytest.raises(IndexOpenError, match="is a folder"):
        Index(tmp_path)
    with pytest.raises(IndexOpenError, match="does not exist"):
        Index(tmp_path / "no" / "such" / "x.db")


def test_readonly_connection_cannot_write(tmp_path):
    Index(tmp_path / "x.db").close()
    conn = connect_readonly(tmp_path / "x.db")
    assert conn.execute("SELECT count(*) FROM images").fetchone() == (0,)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("INSERT INTO settings VALUES ('a', 'b')")
