"""Plan a search: which images may match (buckets), and the chunk pairs that cover every pair
involving a new image, pruned by exact lower bounds before any tensor is read.

- With ``same_dim`` images are bucketed by their pixel dimensions (either orientation), with
  ``in_folder`` by the root folder they are under; pairs never cross buckets.
- Exact duplicates (threshold 0) are bucketed further by an orientation-invariant key (channel
  sums and sums of squares), so only images that could be identical meet the kernel: O(N).
- The *classic* plan (<= CLASSIC_MAX images) cuts buckets by id and compares every chunk pair;
  the *chunked* plan is a range search (``nearby``, ``space``): each image a point whose
  distances bound the MSE from below, a grid of cells, a block against its neighbouring cells.
- Images in reference folders are never compared with each other, only with the rest: a large
  archive against a few new files costs k*n, not n^2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.queries import load_tensors, store_search_keys
from imgindex.scan.discover import under
from imgindex.compare import keys, nearby, points, space
from imgindex.compare.settings import Base

if TYPE_CHECKING:
    from sqlite_utils import Database

CLASSIC_MAX = 5000
FEW_KEYS = 20_000  # ids asked for by list below this, else all kept ids read
MIN_CHUNK = 1000


@dataclass(frozen=True)
class Scope:
    ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    roots: np.ndarray  # index into the roots tuple, -1 when not in_folder
    moved_at: list  # ISO time of the image's last move, or None
    folders: list  # each image's folder

    def under_any(self, folders: tuple[str, ...]) -> np.ndarray:
        """Mask of the images under one of ``folders`` (each distinct folder checked once)."""
        if not folders:
            return np.zeros(len(self.folders), dtype=bool)
        inside = {f: any(under(f, r) for r in folders) for f in set(self.folders)}
        return np.array([inside[f] for f in self.folders], dtype=bool)


def default_chunksize(n: int, algorithm: str, processes: int) -> int:
    """classic: a few chunks per process, all kept in memory; chunked: difPy's 1e6 / N, at least MIN_CHUNK."""
    if algorithm == "classic":
        return max(1, min(-(-n // (2 * processes)), 1250))
    return max(1_000_000 // max(n, 1), MIN_CHUNK)


def new_mask(scope: Scope, base: Base | None) -> np.ndarray:
    """Images a search must compare: all, or (incremental) those added or moved since the base."""
    if base is None:
        return np.ones(len(scope.ids), dtype=bool)
    moved = np.array([m is not None and m >= base.started_at for m in scope.moved_at], dtype=bool)
    return (scope.ids > base.max_image_id) | moved


def load_scope(db: Database, roots: tuple[str, ...], in_folder: bool) -> Scope:
    """Ids, dimensions and (for in_folder) root of every image to search, in id order.

    Transposed in C (``zip(*rows)``) and each distinct folder matched to the roots once: a
    million rows cost about a second, not a Python loop per row."""
    rows = db.execute("SELECT id, width, height, folder, moved_at FROM images ORDER BY id").fetchall()
    ids, widths, heights, folders, moved_at = (list(c) for c in zip(*rows)) if rows else ([], [], [], [], [])
    root_of = np.full(len(ids), -1, dtype=np.int64)
    if roots:
        match = {f: next((k for k, r in enumerate(roots) if under(f, r)), -1) for f in set(folders)}
        found = np.fromiter((match[f] for f in folders), dtype=np.int64, count=len(folders))
        keep = found >= 0
        picked = np.flatnonzero(keep).tolist()
        ids, widths, heights = (np.asarray(c, dtype=np.int64)[keep] for c in (ids, widths, heights))
        folders, moved_at = [folders[k] for k in picked], [moved_at[k] for k in picked]
        root_of = found[keep] if in_folder else np.full(len(ids), -1, dtype=np.int64)
    return Scope(
        ids=np.asarray(ids, dtype=np.int64),
        widths=np.asarray(widths, dtype=np.int64),
        heights=np.asarray(heights, dtype=np.int64),
        roots=root_of,
        moved_at=moved_at,
        folders=folders,
    )


@dataclass(frozen=True)
class Task:
    """Compare tensors of ids_a with ids_b (``ids_b is None``: ids_a with itself, i < j)."""

    ids_a: tuple[int, ...]
    ids_b: tuple[int, ...] | None

    @property
    def work(self) -> int:
        na = len(self.ids_a)
        return na * na // 2 if self.ids_b is None else na * len(self.ids_b)


def bucket_keys(scope: Scope, same_dim: bool, in_folder: bool) -> np.ndarray:
    """(n, k) int64: what puts each image in its bucket (its root, its dimensions); two images
    may match only when their rows are equal."""
    keys = [scope.roots if in_folder else np.zeros(len(scope.ids), np.int64)]
    if same_dim:
        keys += [np.minimum(scope.widths, scope.heights), np.maximum(scope.widths, scope.heights)]
    return np.stack(keys, axis=1)


def _buckets(scope: Scope, same_dim: bool, in_folder: bool) -> Iterator[np.ndarray]:
    """Groups of scope positions that may contain matches; pairs never cross groups."""
    key = bucket_keys(scope, same_dim, in_folder)
    order = np.lexsort(key.T[::-1])
    splits = np.flatnonzero(np.any(np.diff(key[order], axis=0) != 0, axis=1)) + 1
    for part in np.split(order, splits):
        if len(part) >= 2:
            yield np.sort(part)


def ensure_search_keys(db: Database, ids: np.ndarray, px_size: int, chunk: int = 2048) -> None:
    """Compute, once per image, the keys a search plans with (identity key, coarse vector, orbit
    features, sample) for the ``ids`` that have none yet, from their tensors; workers then read
    the keys instead of the tensor to bound every pair."""
    if len(ids) <= FEW_KEYS:  # a few new images: ask for them, not for the million that have keys
        kept = np.fromiter((r[0] for r in db.execute(
            "SELECT image_id FROM search_keys WHERE sample IS NOT NULL"
            " AND image_id IN (SELECT value FROM json_each(?))",
            [json.dumps(np.asarray(ids).tolist())])), dtype=np.int64)
    else:
        kept = np.fromiter((r[0] for r in db.execute("SELECT image_id FROM search_keys WHERE sample IS NOT NULL")),
                           dtype=np.int64)
    missing = space.missing_from(np.sort(ids), np.sort(kept))
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        made = keys.pixel_keys(load_tensors(db, part, px_size), px_size)
        with db.atomic():
            store_search_keys(db, part.tolist(), [made.row(i) for i in range(len(part))])
            points.add(db, px_size, part, made.orbits)


def identity_keys(db: Database, ids: np.ndarray) -> list[bytes]:
    """Channel sums and sums of squares of each id, in that order: the same in every orientation,
    so only images with equal keys can be identical."""
    have = dict(db.execute("SELECT image_id, ikey FROM search_keys WHERE image_id IN (SELECT value FROM json_each(?))",
                           [json.dumps(ids.tolist())]))
    return [have[i] for i in ids.tolist()]


def plan(db, scope, is_new, px_size, threshold, same_dim, in_folder, chunksize, algorithm,
         is_reference=None, scratch=None) -> Iterator[Task | nearby.SpaceTask]:
    """Tasks covering every pair that involves at least one new image and at most one reference
    image. A chunked search with a threshold above 0 is a range search (``nearby``), whose
    arrays go to ``scratch`` (a ``nearby.Scratch``)."""
    if is_reference is None:
        is_reference = np.zeros(len(scope.ids), dtype=bool)
    buckets = [b for b in _buckets(scope, same_dim, in_folder) if is_new[b].any() and not is_reference[b].all()]
    if not buckets:
        return
    ensure_search_keys(db, scope.ids[np.concatenate(buckets)], px_size)
    for number, part in enumerate(buckets):
        ids, new, ref = scope.ids[part], is_new[part], is_reference[part]
        if threshold > 0 and algorithm == "chunked":
            yield from nearby.tasks(db, scratch, number, ids, new, ref, px_size, threshold, chunksize)
        elif threshold == 0:  # exact duplicates: only images sharing an identity key (O(N) to find) can be identical
            groups: dict[bytes, list[int]] = {}
            for position, key in enumerate(identity_keys(db, ids)):
                groups.setdefault(key, []).append(position)
            for m in groups.values():
                if len(m) > 1 and new[m].any():
                    yield from _plan_part(ids[m], new[m], ref[m], chunksize)
        else:
            yield from _plan_part(ids, new, ref, chunksize)


def _plan_part(ids: np.ndarray, new: np.ndarray, ref: np.ndarray, chunksize: int) -> Iterator[Task]:
    """New images against all the others and each other; reference images only against the rest.
    Chunks are cut by id and every chunk pair is compared (the classic plan, and the candidates
    sharing an identity key)."""
    chunk = lambda mask: _chunks(ids[mask], chunksize)  # noqa: E731
    rest_new, rest_old = chunk(~ref & new), chunk(~ref & ~new)
    yield from _pairs_of(rest_new, rest_old)
    if ref.any():
        yield from _across(chunk(ref), rest_new)
        yield from _across(chunk(ref & new), rest_old)


def _pairs_of(new_chunks, old_chunks) -> Iterator[Task]:
    """Every new chunk against every old chunk, itself, and the later new chunks."""
    for i, a in enumerate(new_chunks):
        for b in old_chunks:
            yield Task(b, a)
        yield Task(a, None)
        for b in new_chunks[i + 1 :]:
            yield Task(a, b)


def _across(old_chunks, new_chunks) -> Iterator[Task]:
    """Every chunk of one side against every chunk of the other; none against its own side."""
    for a in new_chunks:
        for b in old_chunks:
            yield Task(b, a)


def _chunks(ids: np.ndarray, chunksize: int) -> list[tuple[int, ...]]:
    """Chunks of at most ``chunksize`` ids, in id order."""
    if len(ids) == 0:
        return []
    order = np.argsort(ids, kind="stable")
    return [tuple(ids[c].tolist()) for c in np.array_split(order, -(-len(ids) // chunksize))]


@dataclass(frozen=True)
class NewImages:
    """The images an incremental search compares, when they are few: ids ascending, facts alike."""

    ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    folders: list


def new_images(db: Database, base: Base, roots: tuple[str, ...], most: int) -> NewImages | None:
    """The images in scope added or moved since ``base``, found by index (ids above the base's
    highest, ``images_moved_at``) without reading the others; None when there are more than ``most``."""
    moved = db.execute("SELECT id FROM images WHERE moved_at IS NOT NULL AND moved_at >= ? LIMIT ?",
                       [base.started_at, most + 1]).fetchall()
    added = db.execute("SELECT id FROM images WHERE id > ? LIMIT ?", [base.max_image_id, most + 1]).fetchall()
    ids = sorted({r[0] for r in moved} | {r[0] for r in added})
    if len(ids) > most:
        return None
    rows = db.execute("SELECT id, width, height, folder FROM images WHERE id IN (SELECT value FROM json_each(?))"
                      " ORDER BY id", [json.dumps(ids)]).fetchall()
    if roots:
        inside = {f: any(under(f, r) for r in roots) for f in {r[3] for r in rows}}
        rows = [r for r in rows if inside[r[3]]]
    ids, widths, heights, folders = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    return NewImages(np.asarray(ids, dtype=np.int64), np.asarray(widths, dtype=np.int64),
                     np.asarray(heights, dtype=np.int64), folders)


def moved_since(db: Database, base: Base) -> np.ndarray:
    """Ids of the images moved since ``base`` started (in scope or out of it): their pairs are
    found again, or no longer belong."""
    # (IS NOT NULL: so SQLite reads the partial index images_moved_at, not every row)
    return np.sort(np.fromiter((r[0] for r in db.execute(
        "SELECT id FROM images WHERE moved_at IS NOT NULL AND moved_at >= ?", [base.started_at])), dtype=np.int64))


def scope_size(db: Database, roots: tuple[str, ...]) -> int:
    """How many images a search covers, counted by folder (an index) rather than row by row."""
    if not roots:
        return db.execute("SELECT count(*) FROM images").fetchone()[0]
    return sum(n for folder, n in db.execute("SELECT folder, count(*) FROM images GROUP BY folder")
               if any(under(folder, r) for r in roots))


def max_image_id(db: Database) -> int:
    return db.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()[0]
