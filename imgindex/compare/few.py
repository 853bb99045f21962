"""A few new images against an index of any size (the watcher's case): their neighbours from the
point index (``points``), then the bounds and the exact kernel on those pairs only (``tasks``), in
tasks the usual runner spreads over the workers (each reading SQLite on its own read-only
connection; on a cluster the coordinator looks the pairs up and sends them with their keys).

Flows in: the new images' ids and a search's settings. Flows out: tasks, whose candidate pairs
(``FewTask.listed``) are those a full plan's tasks would compare for them: the same buckets
(dimensions, root folder), reference images never paired with each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgindex.scan.discover import under
from imgindex.compare import kernel, nearby, points
from imgindex.compare.plan import ensure_search_keys

if TYPE_CHECKING:
    from sqlite_utils import Database

    from imgindex.compare.settings import Settings


FEW_PER_TASK = 100  # new images per task: two workers share a thousand
WORK_PER_IMAGE = 40_000  # a task's work in the runner's units (candidate pairs x orientations), as measured


@dataclass(frozen=True)
class FewTask:
    """New images to find the neighbours of, with what decides which pairs count (read-only work:
    the keys and points of ``ids`` exist before the task runs)."""

    ids: tuple[int, ...]
    new: tuple[int, ...]  # every new image of the search (ascending): a pair of two is the lower one's task's
    roots: tuple[str, ...]
    reference: tuple[str, ...]
    in_folder: bool
    same_dim: bool

    @property
    def work(self) -> int:
        return len(self.ids) * WORK_PER_IMAGE

    def listed(self, conn, px_size: int, threshold: float) -> np.ndarray:
        return listed_pairs(conn, px_size, self, threshold)


def few_tasks(db: Database, new: np.ndarray, px_size: int, settings: Settings):
    """The keys and points of the new images (ids ascending; written here, once), then tasks of
    FEW_PER_TASK of them."""
    if len(new) == 0:
        return []
    ensure_search_keys(db, new, px_size)
    points.ensure(db, px_size)
    every = tuple(np.asarray(new).tolist())
    return [FewTask(every[k : k + FEW_PER_TASK], every, settings.roots, settings.reference, settings.in_folder,
                    settings.same_dim) for k in range(0, len(every), FEW_PER_TASK)]


def listed_pairs(conn, px_size: int, task: FewTask, threshold: float) -> np.ndarray:
    """The candidate pairs ((k, 2) ids, lower first) of the task's images, against all images in
    scope and each other, from the point index: an index lookup, so it runs where SQLite is."""
    ids = np.array(task.ids, dtype=np.int64)
    features = nearby.load_orbits(conn, ids, len(kernel.grid_edges(px_size)) - 1)
    limit = kernel.ssd_threshold(threshold, px_size * px_size * 3)
    pairs = _in_scope(conn, points.candidates(conn, px_size, ids, features, limit), task)
    new = np.array(task.new, dtype=np.int64)
    both_new = np.isin(pairs[:, 0], new) & np.isin(pairs[:, 1], new)
    return pairs[~(both_new & ~np.isin(pairs[:, 0], ids))]  # two new images: the lower one's task has it


def _in_scope(db, pairs: np.ndarray, settings: FewTask) -> np.ndarray:
    """The candidate pairs a full plan would also have made: both images indexed and in scope, in
    one bucket, not both in reference folders."""
    if len(pairs) == 0:
        return pairs
    ids = np.unique(pairs)
    rows = db.execute("SELECT id, width, height, folder FROM images WHERE id IN (SELECT value FROM json_each(?))"
                      " ORDER BY id", [json.dumps(ids.tolist())]).fetchall()
    found = np.array([r[0] for r in rows], dtype=np.int64)
    pairs = pairs[np.isin(pairs[:, 0], found) & np.isin(pairs[:, 1], found)]
    folders = sorted({r[3] for r in rows})
    roots = settings.roots
    root_of = np.array([next((k for k, r in enumerate(roots) if under(f, r)), -1) if roots else 0 for f in folders])
    is_ref = np.array([any(under(f, r) for r in settings.reference) for f in folders], dtype=bool)
    folder_at = np.searchsorted(folders, [r[3] for r in rows])
    size = np.array([(min(r[1], r[2]), max(r[1], r[2])) for r in rows], dtype=np.int64).reshape(-1, 2)
    a, b = np.searchsorted(found, pairs[:, 0]), np.searchsorted(found, pairs[:, 1])
    fa, fb = folder_at[a], folder_at[b]
    keep = (root_of[fa] >= 0) & (root_of[fb] >= 0) & ~(is_ref[fa] & is_ref[fb])
    if settings.in_folder:
        keep &= root_of[fa] == root_of[fb]
    if settings.same_dim:
        keep &= np.all(size[a] == size[b], axis=1)
    return pairs[keep]
