"""Open the SQLite index: PRAGMAs, migrations, settings, and the few queries everyone shares.

One writer (a scan, later the watcher) and any number of readers: WAL mode lets a user's
``sqlite3`` shell or a report query while a scan writes, and ``busy_timeout`` makes a second
writer wait instead of failing at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from typing import TYPE_CHECKING

import numpy as np

from imgindex.errors import IndexOpenError, SchemaTooNewError

if TYPE_CHECKING:
    from sqlite_utils import Database

BUSY_TIMEOUT_MS = 30_000
PAGE_SIZE = 16_384  # 7.5 KB tensors: fewer overflow pages, faster streaming


def connect(path: str | os.PathLike) -> Database:
    """Open (creating if needed) and upgrade the index at ``path``; raises IndexOpenError."""
    # imported here: worker processes only read (connect_readonly) and never load sqlite-utils
    from sqlite_utils import Database

    from imgindex.migrations import MIGRATIONS

    path = Path(path)
    if path.is_dir():
        raise IndexOpenError(f"{path} is a folder; --db needs a database file path.")
    if path.parent and not path.parent.exists():
        raise IndexOpenError(f"The folder {path.parent} does not exist; create it or choose another --db.")
    is_new = not path.exists() or path.stat().st_size == 0
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        if is_new:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        db = Database(conn, execute_plugins=False)
        _refuse_future_schema(db, path, MIGRATIONS)
        MIGRATIONS.apply(db)
    except sqlite3.DatabaseError as exc:
        raise IndexOpenError(
            f"{path} is not a usable imgindex database ({exc}). "
            "If it is corrupt, move it aside and scan again into a new --db."
        ) from exc
    return db


def connect_readonly(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection, for worker processes; never writes, never migrates."""
    uri = f"file:{quote(os.fspath(Path(path).resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def _refuse_future_schema(db: Database, path: Path, migrations) -> None:
    known = {m.name for m in migrations._migrations}
    applied = {m.name for m in migrations.applied(db)}
    unknown = sorted(applied - known)
    if unknown:
        raise SchemaTooNewError(
            f"{path} was written by a newer imgindex (schema steps {', '.join(unknown)} are "
            "unknown to this version). Upgrade imgindex (pip install -U imgindex) to use it."
        )


def get_setting(db: Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return None if row is None else row[0]


def set_setting(db: Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO settings(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


@dataclass(frozen=True)
class VectorChunk:
    """A block of stored tensors: ``ids[i]`` owns ``tensors[i]`` (uint8, shape (n, px, px, 3))."""

    ids: np.ndarray
    tensors: np.ndarray


def iter_vector_chunks(
    conn: sqlite3.Connection | Database,
    *,
    chunk_size: int,
    min_id: int = 0,
    max_id: int | None = None,
) -> Iterator[VectorChunk]:
    """Stream tensors in id order, ``chunk_size`` at a time, with ``min_id < id <= max_id``.

    Keyset pagination (``image_id > last``) keeps each query an index range scan, so streaming
    N vectors costs O(N) whatever the offset, and memory stays at one chunk.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    execute = conn.execute
    last = min_id
    upper = max_id if max_id is not None else 2**63 - 1
    while True:
        rows = execute(
            "SELECT image_id, px_size, tensor FROM tensors WHERE image_id > ? AND image_id <= ? "
            "ORDER BY image_id LIMIT ?",
            [last, upper, chunk_size],
        ).fetchall()
        if not rows:
            return
        px = rows[0][1]
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        tensors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.uint8)
        yield VectorChunk(ids=ids, tensors=tensors.reshape(len(rows), px, px, 3))
        last = int(ids[-1])


def load_coarse(conn: sqlite3.Connection | Database, ids, grid: int) -> np.ndarray:
    """Cached coarse vectors (search_keys.coarse) of ``ids``, in that order: (len(ids), grid, grid, 3)."""
    ids = [int(i) for i in ids]
    found = dict(
        conn.execute(
            "SELECT image_id, coarse FROM search_keys WHERE image_id IN (SELECT value FROM json_each(?))",
            [json.dumps(ids)],
        ).fetchall()
    )
    if len(found) != len(set(ids)):
        raise KeyError(f"coarse vectors missing for image ids {sorted(set(ids) - set(found))[:10]}")
    return np.frombuffer(b"".join(found[i] for i in ids), dtype=np.float64).reshape(len(ids), grid, grid, 3)


def load_tensors(conn: sqlite3.Connection | Database, ids: np.ndarray | list[int], px_size: int) -> np.ndarray:
    """Tensors of ``ids`` (ascending) as one uint8 array (len(ids), px, px, 3), in that order."""
    ids = [int(i) for i in ids]
    rows = conn.execute(
        "SELECT image_id, tensor FROM tensors WHERE image_id IN (SELECT value FROM json_each(?)) ORDER BY image_id",
        [json.dumps(ids)],
    ).fetchall()
    if [r[0] for r in rows] != sorted(ids):
        missing = sorted(set(ids) - {r[0] for r in rows})
        raise KeyError(f"tensors missing for image ids {missing[:10]}")
    order = np.argsort(np.argsort(ids, kind="stable"), kind="stable")
    data = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), px_size, px_size, 3)
    return data[order] if len(ids) > 1 and ids != sorted(ids) else data
