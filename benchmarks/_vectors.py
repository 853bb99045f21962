"""Synthetic indexes for the benchmarks that measure the comparer and the server, not decoding:
smooth random 50x50 pictures and their rows written straight into an index."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np

import imgindex
from imgindex.scan.decode import DECODER

PX = 50


def pictures(rng: np.random.Generator, k: int) -> np.ndarray:
    """k smooth random pictures with grain: no two of them within 'similar' of each other."""
    base = rng.integers(0, 256, (k, 5, 5, 3)).astype(np.float32)
    big = np.repeat(np.repeat(base, 10, axis=1), 10, axis=2) + rng.normal(0, 8, (k, PX, PX, 3))
    return np.clip(big, 0, 255).astype(np.uint8)


def near_copy(rng: np.random.Generator, tensor: np.ndarray) -> np.ndarray:
    """Every value within +-2: MSE about 2 to the original, about 4 between two copies of it."""
    return np.clip(tensor.astype(np.int16) + rng.integers(-2, 3, tensor.shape), 0, 255).astype(np.uint8)


def insert_images(index: imgindex.Index, paths: list[str], tensors: np.ndarray) -> None:
    """Rows (distinct sizes and content hashes, 1024x768 JPEGs as far as the index knows) and their
    tensors, straight into the index, in one transaction."""
    now = datetime.now(timezone.utc).isoformat()
    index.db.execute("INSERT OR REPLACE INTO settings VALUES ('px_size', ?)", [str(PX)])
    with index.db.atomic():
        first = index.db.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()[0] + 1
        rows = [(path, os.path.dirname(path), 1_000_000 + first + j, 0, 1024, 768, "JPEG",
                 f"{first + j:064x}", PX, DECODER, now) for j, path in enumerate(paths)]
        index.db.conn.executemany(
            "INSERT INTO images (path, folder, size, mtime_ns, width, height, format, content_hash, px_size,"
            " decoder, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        index.db.conn.executemany(f"INSERT INTO tensors VALUES (?, {PX}, ?)",
                                  [(first + j, tensors[j].tobytes()) for j in range(len(paths))])
