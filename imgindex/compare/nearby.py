"""Plan a chunked search as a range search: each image a point in ``space``, a grid of cells per set
of images, and tasks that each take a block of one set against its neighbours in another.

Flows in: a bucket's image ids with their new and reference masks, and the search's threshold.
Flows out: ``SpaceTask``s, and the arrays they read, written once to a scratch folder that workers
map read-only (shared through the page cache). The scratch folder is not state: it is removed when
the search ends, and a later search removes any a killed one left.

The sets: new images outside reference folders ("new"), the other images outside them ("old"),
images in reference folders ("ref"), and the new ones among those ("refnew"). The joins are those
of ``plan._plan_part``: new with new, new with old, new with ref, refnew with old. Never ref with ref.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imgindex.errors import ScratchFullError
from imgindex.compare import kernel, space

if TYPE_CHECKING:
    from sqlite_utils import Database

SCRATCH_PREFIX = "imgindex-search-"
COARSE_SHARE = 16  # write every image's coarse vector when at least 1/16 of a bucket is on the left
_IDS_PER_QUERY = 20_000


@dataclass(frozen=True)
class SpaceTask:
    """Sorted positions [lo, hi) of the ``left`` set against their neighbours in ``right``
    (``same``: left is right, each pair once); arrays under the scratch path ``prefix``."""

    prefix: str
    left: str
    right: str
    lo: int
    hi: int
    same: bool
    work: int


class Scratch:
    """A private temporary folder for a search's arrays, removed on exit; stale ones (their
    process gone) are removed on entry."""

    def __enter__(self) -> Scratch:
        base = Path(tempfile.gettempdir())
        for old in base.glob(f"{SCRATCH_PREFIX}*"):
            pid = old.name[len(SCRATCH_PREFIX):].split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        try:
            self.path = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ScratchFullError(base) from exc
            raise
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _blocks(db: Database, column: str, ids: np.ndarray, width: int, dtype=np.float64):
    """(positions in ``ids``, values (k, width)) of the rows of ``ids`` whose ``column`` holds
    ``width`` values, a batch of ids per query; and the ids whose column does not (NULL, or
    written by an earlier form of it)."""
    size = width * np.dtype(dtype).itemsize
    for start in range(0, len(ids), _IDS_PER_QUERY):
        part = json.dumps(ids[start : start + _IDS_PER_QUERY].tolist())
        rows = db.execute(f"SELECT image_id, {column} FROM search_keys"
                          " WHERE image_id IN (SELECT value FROM json_each(?))", [part]).fetchall()
        have = [r for r in rows if r[1] is not None and len(r[1]) == size]
        at = np.searchsorted(ids, np.fromiter((r[0] for r in have), dtype=np.int64, count=len(have)))
        values = np.frombuffer(b"".join(r[1] for r in have), dtype=dtype).reshape(len(have), width)
        yield at, values, [r[0] for r in rows if r[1] is None or len(r[1]) != size]


def load_orbits(db: Database, ids: np.ndarray, grid: int) -> np.ndarray:
    """Orbit features of ``ids`` (ascending), (len(ids), m), kept as float32; those not kept yet
    (or kept by an earlier form of the feature) are made from the coarse vector and kept."""
    m = grid * grid * 3
    out = np.empty((len(ids), m), dtype=np.float32)
    missing = []
    for at, values, other in _blocks(db, "orbits", ids, m, np.float32):
        out[at] = values
        missing += other
    missing = np.array(sorted(missing), dtype=np.int64)
    for at, values, _ in _blocks(db, "coarse", missing, m):
        features = space.orbit_features(values.reshape(len(values), grid, grid, 3)).astype(np.float32)
        out[np.searchsorted(ids, missing[at])] = features
        with db.atomic():
            db.conn.executemany("UPDATE search_keys SET orbits = ? WHERE image_id = ?",
                                [(f.tobytes(), int(i)) for i, f in zip(missing[at].tolist(), features)])
    return out


def largest_norm(rows: np.ndarray, chunk: int = 65_536) -> float:
    """The largest Euclidean norm of the rows (any shape after the first axis), in float64, a chunk
    at a time."""
    largest = 0.0
    for start in range(0, len(rows), chunk):
        block = rows[start : start + chunk].reshape(min(chunk, len(rows) - start), -1).astype(np.float64)
        largest = max(largest, float(np.einsum("ij,ij->i", block, block).max(initial=0)))
    return float(np.sqrt(largest))


def _new_array(path: Path, dtype, shape: tuple) -> np.ndarray:
    """A mapped .npy array with its disk space taken at once: writing into a mapping past a full
    disk kills the process (SIGBUS, seen with a full /tmp), where this raises ENOSPC first."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        with open(path, "r+b") as fp:
            os.posix_fallocate(fp.fileno(), 0, os.fstat(fp.fileno()).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a filesystem without fallocate: map as is
            del out
            raise
    return out


def _save(path, array: np.ndarray) -> None:
    """``np.save``, its disk space taken first: numpy's own says only "requested and written" when
    the disk is full, with no errno to tell it by."""
    out = _new_array(path, array.dtype, array.shape)
    out[...] = array
    out.flush()
    del out


def _write_coarse(db: Database, path: Path, ids: np.ndarray, to: np.ndarray, px_size: int) -> float:
    """Centred float32 coarse vectors of ``ids`` (ascending) to ``path``, the one of ids[k] at row
    to[k]; returns their largest norm."""
    edges = kernel.grid_edges(px_size)
    g = len(edges) - 1
    center = kernel.coarse_center(edges).astype(np.float32)
    out = _new_array(path, np.float32, (len(ids), g, g, 3))
    largest = 0.0
    for at, values, _ in _blocks(db, "coarse", ids, g * g * 3):
        block = values.reshape(len(values), g, g, 3).astype(np.float32) - center
        out[to[at]] = block
        flat = block.reshape(len(block), -1).astype(np.float64)
        largest = max(largest, float(np.einsum("ij,ij->i", flat, flat).max(initial=0)))
    out.flush()
    del out
    return float(np.sqrt(largest))


def _write_samples(db: Database, path: Path, ids: np.ndarray, to: np.ndarray, px_size: int) -> None:
    """The samples (kernel.sample) of ``ids`` (ascending) to ``path``, the one of ids[k] at row to[k]."""
    side = len(kernel.sample_positions(px_size))
    out = _new_array(path, np.uint8, (len(ids), side, side, 3))
    for at, values, _ in _blocks(db, "sample", ids, side * side * 3, np.uint8):
        out[to[at]] = values.reshape(len(values), side, side, 3)
    out.flush()
    del out


def load_samples(db: Database, ids: np.ndarray, px_size: int) -> np.ndarray:
    """The samples of ``ids`` (distinct, any order), from SQLite."""
    side = len(kernel.sample_positions(px_size))
    order = np.argsort(ids, kind="stable")
    out = np.empty((len(ids), side, side, 3), dtype=np.uint8)
    for at, values, _ in _blocks(db, "sample", ids[order], side * side * 3, np.uint8):
        out[order[at]] = values.reshape(len(values), side, side, 3)
    return out


def tasks(db: Database, scratch: Scratch, bucket: int, ids: np.ndarray, new: np.ndarray, ref: np.ndarray,
          px_size: int, threshold: float, chunksize: int):
    """The SpaceTasks of one bucket (``ids`` ascending), after writing the arrays they read."""
    try:
        prefix, joins, grids, offsets = _write_bucket(db, scratch, bucket, ids, new, ref, px_size, threshold)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ScratchFullError(scratch.path) from exc
        raise
    for left, right in joins:
        yield from _join_tasks(str(prefix), left, right, grids, offsets[left == right], chunksize)


def _write_bucket(db, scratch, bucket, ids, new, ref, px_size, threshold):
    """Fit the bucket's space and write the arrays its tasks read; (prefix, joins, grids, offsets)."""
    limit = kernel.ssd_threshold(threshold, px_size * px_size * 3)
    features = load_orbits(db, ids, len(kernel.grid_edges(px_size)) - 1)
    radius = space.stored_radius(float(np.sqrt(limit)), largest_norm(features))
    sp = space.fit(features, radius)
    points = space.project(sp, features, space.CLOSE_DIMS)
    del features
    keys = space.cell_keys(sp, points)
    # every array in cell order: a task's neighbours lie in a few runs of the scratch files, so
    # it touches a few pages of them, not pages all over (a worker's resident memory stays small)
    perm = np.lexsort((points[:, min(sp.dims, points.shape[1] - 1)], keys))
    keys, new, ref = keys[perm], new[perm], ref[perm]
    close = points.astype(np.float32)[perm]
    del points
    prefix = scratch.path / f"b{bucket}"
    _save(f"{prefix}-ids.npy", ids[perm])
    _save(f"{prefix}-points.npy", close)
    sets = {"new": ~ref & new, "old": ~ref & ~new, "ref": ref, "refnew": ref & new}
    joins = [(a, b) for a, b in (("new", "new"), ("new", "old"), ("new", "ref"), ("refnew", "old"))
             if sets[a].any() and sets[b].any()]
    grids = _write_grids(prefix, keys, sets, {name for join in joins for name in join})
    coarse_norm = np.nan
    if sum(int(sets[a].sum()) for a, _ in joins) * COARSE_SHARE >= len(ids):
        to_cell = np.empty_like(perm)
        to_cell[perm] = np.arange(len(perm))
        coarse_norm = _write_coarse(db, Path(f"{prefix}-coarse.npy"), ids, to_cell, px_size)
        _write_samples(db, Path(f"{prefix}-sample.npy"), ids, to_cell, px_size)
    offsets = {True: space.neighbour_offsets(sp, half=True), False: space.neighbour_offsets(sp, half=False)}
    np.savez(f"{prefix}-meta.npz", half=offsets[True], full=offsets[False], radius=radius,
             points_norm=largest_norm(close), coarse_norm=coarse_norm)
    return prefix, joins, grids, offsets


def _write_grids(prefix: Path, keys: np.ndarray, sets: dict, names: set) -> dict:
    """The grid of each set of images named (positions in cell order), written for the workers."""
    grids = {}
    for name in names:
        members = np.flatnonzero(sets[name])  # in cell order already
        grids[name] = space.make_grid(keys[members])
        _save(f"{prefix}-{name}-order.npy", members[grids[name].order])
        _save(f"{prefix}-{name}-keys.npy", grids[name].keys)
    return grids


def _join_tasks(prefix: str, left: str, right: str, grids: dict, offsets: np.ndarray, chunksize: int):
    """Blocks of ``chunksize`` images of ``left`` against their neighbours in ``right``, each with
    its number of candidate pairs as its work (blocks with none are left out)."""
    same = left == right
    counts = space.neighbour_counts(grids[left].keys, grids[right], offsets)
    if same:  # and the points after each one in its own cell
        at = np.searchsorted(grids[left].cells, grids[left].keys)
        counts += grids[left].starts[at] + grids[left].counts[at] - np.arange(len(counts)) - 1
    for lo in range(0, len(counts), chunksize):
        hi = min(lo + chunksize, len(counts))
        work = int(counts[lo:hi].sum())
        if work:
            yield SpaceTask(prefix, left, right, lo, hi, same, work)


@dataclass
class Bucket:
    """A bucket's arrays as a worker maps them."""

    ids: np.ndarray
    points: np.ndarray
    coarse: np.ndarray | None
    samples: np.ndarray | None
    grids: dict
    meta: dict

    def grid(self, prefix: str, name: str) -> space.Grid:
        if name not in self.grids:
            self.grids[name] = _load_grid(prefix, name, "r")
        return self.grids[name]


def _load_grid(prefix: str, name: str, mmap_mode: str | None) -> space.Grid:
    order = np.load(f"{prefix}-{name}-order.npy", mmap_mode=mmap_mode)
    keys = np.load(f"{prefix}-{name}-keys.npy")
    cells, starts, counts = np.unique(keys, return_index=True, return_counts=True)
    return space.Grid(order, keys, cells, starts, counts)


def open_bucket(prefix: str, grids: dict | None = None, meta: dict | None = None) -> Bucket:
    """A bucket's arrays, freshly mapped. Workers map them again for every task, so the pages a task
    touched leave the process's memory with it (they stay in the page cache, shared, not in RSS);
    the grids and the small facts are kept between tasks."""
    meta = meta if meta is not None else dict(np.load(f"{prefix}-meta.npz"))
    coarse, samples = Path(f"{prefix}-coarse.npy"), Path(f"{prefix}-sample.npy")
    return Bucket(np.load(f"{prefix}-ids.npy", mmap_mode="r"), np.load(f"{prefix}-points.npy", mmap_mode="r"),
                  np.load(coarse, mmap_mode="r") if coarse.exists() else None,
                  np.load(samples, mmap_mode="r") if samples.exists() else None,
                  grids if grids is not None else {}, meta)


def held_bucket(db: Database, prefix: str, px_size: int) -> Bucket:
    """A bucket's arrays read into memory, its coarse vectors included (written now when the plan
    left them to SQLite), its samples not: what a cluster worker gets, having neither this scratch
    folder nor the index."""
    meta = dict(np.load(f"{prefix}-meta.npz"))
    ids = np.load(f"{prefix}-ids.npy")
    coarse = Path(f"{prefix}-coarse.npy")
    if not coarse.exists():
        order = np.argsort(ids, kind="stable")
        meta["coarse_norm"] = _write_coarse(db, coarse, ids[order], order, px_size)
    names = [Path(f).name[len(Path(prefix).name) + 1 : -len("-order.npy")]
             for f in sorted(Path(prefix).parent.glob(f"{Path(prefix).name}-*-order.npy"))]
    return Bucket(ids, np.load(f"{prefix}-points.npy"), np.load(coarse), None,
                  {name: _load_grid(prefix, name, None) for name in names}, meta)


GRID_PARTS = ("order", "keys", "cells", "starts", "counts")


def bucket_arrays(bucket: Bucket) -> dict[str, np.ndarray]:
    """A held bucket as named arrays: what Dask sends fastest (each array as it is, no pickling)."""
    arrays = {"ids": bucket.ids, "points": bucket.points, "coarse": bucket.coarse}
    arrays.update({f"meta:{k}": np.asarray(v) for k, v in bucket.meta.items()})
    for name, grid in bucket.grids.items():
        arrays.update({f"grid:{name}:{part}": getattr(grid, part) for part in GRID_PARTS})
    return arrays


def bucket_of(arrays: dict[str, np.ndarray]) -> Bucket:
    """The Bucket ``bucket_arrays`` took apart."""
    meta = {k[5:]: v for k, v in arrays.items() if k.startswith("meta:")}
    names = {k.split(":")[1] for k in arrays if k.startswith("grid:")}
    grids = {n: space.Grid(*(arrays[f"grid:{n}:{part}"] for part in GRID_PARTS)) for n in names}
    return Bucket(arrays["ids"], arrays["points"], arrays["coarse"], None, grids, meta)
