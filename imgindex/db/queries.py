"""The queries several stages share: settings, streaming stored tensors and search keys, and the
few lookups (latest search, scanned roots) that would otherwise be written once per stage."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgindex.errors import ImgIndexError

if TYPE_CHECKING:
    from sqlite_utils import Database


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


def _tensor_rows(conn: sqlite3.Connection | Database, ids: list[int]) -> list[tuple[int, bytes]]:
    """(image_id, tensor blob) of those of ``ids`` that have a tensor, by id."""
    return conn.execute(
        "SELECT image_id, tensor FROM tensors WHERE image_id IN (SELECT value FROM json_each(?)) ORDER BY image_id",
        [json.dumps(ids)],
    ).fetchall()


def present_tensors(conn: sqlite3.Connection | Database, ids: np.ndarray | list[int],
                    px_size: int) -> dict[int, np.ndarray]:
    """id -> (px, px, 3) uint8 tensor, for those of ``ids`` still indexed (a scan beside may remove some)."""
    return {i: np.frombuffer(t, np.uint8).reshape(px_size, px_size, 3)
            for i, t in _tensor_rows(conn, [int(i) for i in ids])}


def load_tensors(conn: sqlite3.Connection | Database, ids: np.ndarray | list[int], px_size: int) -> np.ndarray:
    """Tensors of ``ids`` (ascending) as one uint8 array (len(ids), px, px, 3), in that order."""
    ids = [int(i) for i in ids]
    rows = _tensor_rows(conn, ids)
    if [r[0] for r in rows] != sorted(ids):
        missing = sorted(set(ids) - {r[0] for r in rows})
        raise KeyError(f"tensors missing for image ids {missing[:10]}")
    order = np.argsort(np.argsort(ids, kind="stable"), kind="stable")
    data = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), px_size, px_size, 3)
    return data[order] if len(ids) > 1 and ids != sorted(ids) else data


def store_search_keys(db: Database, ids: list[int], rows: list[tuple]) -> None:
    """Keep the search_keys rows (mean, ikey, coarse, orbits, sample) of ``ids``."""
    db.conn.executemany("INSERT OR REPLACE INTO search_keys (image_id, mean, ikey, coarse, orbits, sample)"
                        " VALUES (?, ?, ?, ?, ?, ?)", [(i, *r) for i, r in zip(ids, rows)])


def store_signal_keys(db: Database, table: str, recipe: str, ids: list[int], blobs: list[bytes]) -> None:
    """Keep the tone_keys or rank_keys rows of ``ids`` (b"": no tone)."""
    db.conn.executemany(f"INSERT OR REPLACE INTO {table} (image_id, recipe, coarse) VALUES (?, ?, ?)",
                        [(i, recipe, b) for i, b in zip(ids, blobs)])


def hash_indexed(conn: sqlite3.Connection | Database, digest: str, px_size: int, decoders: tuple[str, ...]) -> bool:
    """Is this content already indexed with a tensor of this size and one of these recipes (so it
    need not be decoded)?"""
    marks = ", ".join("?" * len(decoders))
    return (
        conn.execute(
            f"SELECT 1 FROM images WHERE content_hash = ? AND px_size = ? AND decoder IN ({marks}) LIMIT 1",
            [digest, px_size, *decoders],
        ).fetchone()
        is not None
    )


def resolve_search_id(db: Database, search_id: int | None) -> int:
    """The given search, or the latest completed one; a clear error when there is none."""
    if search_id is None:
        row = db.execute("SELECT id FROM latest_search").fetchone()
        if row is None or row[0] is None:
            raise ImgIndexError("No completed search in this index yet: run `imgindex search` first.")
        return row[0]
    row = db.execute("SELECT status FROM searches WHERE id = ?", [search_id]).fetchone()
    if row is None:
        raise ImgIndexError(f"There is no search {search_id} in this index.")
    return search_id


def latest_scan_roots(db: Database) -> tuple[str, ...]:
    """The roots of the latest completed scan."""
    row = db.execute("SELECT roots FROM scans WHERE status = 'completed' ORDER BY id DESC LIMIT 1").fetchone()
    return tuple(json.loads(row[0])) if row else ()


def indexed_roots(db: Database) -> list[str]:
    """Every folder a completed scan covered (a file under one of them belongs in the index)."""
    roots: set[str] = set()
    for (value,) in db.execute("SELECT DISTINCT roots FROM scans WHERE status = 'completed'"):
        roots.update(json.loads(value))
    return sorted(roots)


def px_size(db: Database) -> int | None:
    """The tensor size this index was built with (None before the first scan)."""
    value = get_setting(db, "px_size")
    return None if value is None else int(value)


def scan_errors_under(db: Database, roots: list[str]) -> list[tuple[str, str, str]]:
    """(path, error_class, message) of every file under ``roots`` that could not be read, as it is now."""
    out = []
    for root in roots:
        prefix = root.rstrip(os.sep) + os.sep
        out += db.execute("SELECT path, error_class, message FROM scan_errors WHERE folder = ? OR"
                          " substr(folder, 1, ?) = ? ORDER BY path", [root, len(prefix), prefix]).fetchall()
    return out
