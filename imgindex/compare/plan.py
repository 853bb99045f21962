"""Plan a search: which images may match (buckets), and the chunk pairs that cover every pair
involving a new image, pruned by exact lower bounds before any tensor is read.

- With ``same_dim`` images are bucketed by their pixel dimensions (either orientation), with
  ``in_folder`` by the root folder they are under; pairs never cross buckets.
- Exact duplicates (threshold 0) are bucketed further by an orientation-invariant key (channel
  sums and sums of squares), so only images that could be identical meet the kernel: O(N).
- The *classic* plan (<= CLASSIC_MAX images) cuts buckets by id; the *chunked* plan sorts by
  mean brightness and skips chunk pairs more than sqrt(threshold) apart (Jensen's inequality).
- Images in reference folders are never compared with each other, only with the rest: a large
  archive against a few new files costs k*n, not n^2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.queries import load_tensors
from imgindex.scan.discover import under
from imgindex.compare import kernel, nearby, space
from imgindex.compare.settings import Base

if TYPE_CHECKING:
    from sqlite_utils import Database

CLASSIC_MAX = 5000
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
    """Ids, dimensions and (for in_folder) root of every image to search, in id order."""
    rows = db.execute("SELECT id, width, height, folder, moved_at FROM images ORDER BY id").fetchall()
    if roots:
        keep = []
        root_of = []
        for row in rows:
            match = next((k for k, r in enumerate(roots) if under(row[3], r)), -1)
            if match >= 0:
                keep.append(row)
                root_of.append(match if in_folder else -1)
        rows = keep
    else:
        root_of = [-1] * len(rows)
    return Scope(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        widths=np.array([r[1] for r in rows], dtype=np.int64),
        heights=np.array([r[2] for r in rows], dtype=np.int64),
        roots=np.array(root_of, dtype=np.int64),
        moved_at=[r[4] for r in rows],
        folders=[r[3] for r in rows],
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


def _buckets(scope: Scope, same_dim: bool, in_folder: bool) -> Iterator[np.ndarray]:
    """Groups of scope positions that may contain matches; pairs never cross groups."""
    keys = [scope.roots if in_folder else np.zeros(len(scope.ids), np.int64)]
    if same_dim:
        keys += [np.minimum(scope.widths, scope.heights), np.maximum(scope.widths, scope.heights)]
    key = np.stack(keys, axis=1)
    order = np.lexsort(key.T[::-1])
    splits = np.flatnonzero(np.any(np.diff(key[order], axis=0) != 0, axis=1)) + 1
    for part in np.split(order, splits):
        if len(part) >= 2:
            yield np.sort(part)


@dataclass(frozen=True)
class Keys:
    """Per scope position: the tensor's mean and its orientation-invariant identity key."""

    means: np.ndarray
    ikeys: list[bytes]


def search_keys(db: Database, ids: np.ndarray, px_size: int, chunk: int = 2048) -> Keys:
    """Mean and identity key of every id, computed once per image and kept in ``search_keys``
    with its coarse vector, which workers read instead of the tensor to bound every pair."""
    have = {
        image_id: (mean, ikey)
        for image_id, mean, ikey in db.execute(
            "SELECT image_id, mean, ikey FROM search_keys WHERE image_id IN (SELECT value FROM json_each(?))",
            [json.dumps(ids.tolist())],
        )
    }
    missing = np.array([i for i in ids.tolist() if i not in have], dtype=np.int64)
    edges = kernel.grid_edges(px_size)
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        images = load_tensors(db, part, px_size)
        coarse = kernel.coarse(images, edges)
        tensors = images.reshape(len(part), -1, 3)
        sums = tensors.sum(axis=1, dtype=np.int64)
        squares = np.einsum("kvc,kvc->kc", tensors.astype(np.int32), tensors.astype(np.int32), dtype=np.int64)
        orbits = space.orbit_features(coarse)
        rows = [
            (image_id, float(s.sum()) / tensors[0].size, s.tobytes() + q.tobytes(), c.tobytes(), o.tobytes())
            for image_id, s, q, c, o in zip(part.tolist(), sums, squares, coarse, orbits)
        ]
        with db.atomic():
            db.conn.executemany("INSERT OR REPLACE INTO search_keys (image_id, mean, ikey, coarse, orbits)"
                                " VALUES (?, ?, ?, ?, ?)", rows)
        have.update((r[0], (r[1], r[2])) for r in rows)
    return Keys(
        means=np.array([have[i][0] for i in ids.tolist()], dtype=np.float64),
        ikeys=[have[i][1] for i in ids.tolist()],
    )


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
    needed = np.concatenate(buckets)
    keys = search_keys(db, scope.ids[needed], px_size)
    where = {int(p): k for k, p in enumerate(needed.tolist())}
    for number, part in enumerate(buckets):
        sub = np.array([where[int(p)] for p in part])
        means, ids, new, ref = keys.means[sub], scope.ids[part], is_new[part], is_reference[part]
        if threshold > 0 and algorithm == "chunked":
            yield from nearby.tasks(db, scratch, number, ids, new, ref, px_size, threshold, chunksize)
        elif threshold == 0:  # exact duplicates: only images sharing an identity key (O(N) to find) can be identical
            groups: dict[bytes, list[int]] = {}
            for position, key in enumerate(keys.ikeys[k] for k in sub):
                groups.setdefault(key, []).append(position)
            for m in groups.values():
                if len(m) > 1 and new[m].any():
                    yield from _plan_part(ids[m], new[m], ref[m], None, threshold, chunksize)
        else:
            yield from _plan_part(ids, new, ref, None, threshold, chunksize)


def _plan_part(ids: np.ndarray, new: np.ndarray, ref: np.ndarray, means: np.ndarray | None, threshold: float,
               chunksize: int) -> Iterator[Task]:
    """New images against all the others and each other; reference images only against the rest.

    With ``means`` chunks are cut by mean brightness and chunk pairs further apart than
    sqrt(threshold) are skipped: the MSE is at least the square of the difference of the two
    images' means (Jensen), in every orientation, so a chunk only meets the chunks within
    sqrt(threshold) of it. Without, chunks are cut by id and every chunk pair is compared.
    """
    if means is None:
        reach, means = np.inf, ids.astype(np.float64)
    else:
        reach = np.sqrt(threshold) * (1 + 1e-9) + 1e-9  # slack for the rounding of the means
    chunk = lambda mask: _sorted_chunks(ids[mask], means[mask], chunksize)  # noqa: E731
    rest_new, rest_old = chunk(~ref & new), chunk(~ref & ~new)
    yield from _pairs_of(rest_new, rest_old, reach)
    if ref.any():
        yield from _across(chunk(ref), rest_new, reach)
        yield from _across(chunk(ref & new), rest_old, reach)


def _pairs_of(new_chunks, old_chunks, reach: float) -> Iterator[Task]:
    """Every new chunk against every old chunk in reach, itself, and the later new chunks in reach."""
    for i, (a, a_lo, a_hi) in enumerate(new_chunks):
        for b, b_lo, b_hi in old_chunks:
            if b_lo - a_hi <= reach and a_lo - b_hi <= reach:
                yield Task(b, a)
        yield Task(a, None)
        for b, b_lo, _b_hi in new_chunks[i + 1 :]:
            if b_lo - a_hi > reach:
                break  # sorted: every later chunk is further still
            yield Task(a, b)


def _across(old_chunks, new_chunks, reach: float) -> Iterator[Task]:
    """Every chunk of one side against every chunk of the other in reach; none against its own side."""
    for a, a_lo, a_hi in new_chunks:
        for b, b_lo, b_hi in old_chunks:
            if b_lo - a_hi <= reach and a_lo - b_hi <= reach:
                yield Task(b, a)


def _sorted_chunks(ids: np.ndarray, keys: np.ndarray, chunksize: int) -> list[tuple[tuple[int, ...], float, float]]:
    """(ids, lowest key, highest key) of chunks cut from the images sorted by key (mean brightness, or id)."""
    if len(ids) == 0:
        return []
    order = np.argsort(keys, kind="stable")
    return [
        (tuple(ids[c].tolist()), float(keys[c[0]]), float(keys[c[-1]]))
        for c in np.array_split(order, -(-len(ids) // chunksize))
    ]
