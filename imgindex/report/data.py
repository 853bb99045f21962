"""What the report shows, read from the index: the search's groups, and the view past its threshold.

Groups alone cannot say whether the threshold was well chosen; the threshold view can. It
compares the search's images again with a wider threshold (writing nothing) to find each
image's nearest neighbour and the closest pairs that were *not* matched, so the page can show
where duplicates end and distinct pictures begin.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
from sqlite_utils import Database

from imgindex.compare.run import near_pairs
from imgindex.compare.settings import SIGNALS

NEAR_MISSES = 50
HISTOGRAM_BINS = 30


@dataclass(frozen=True)
class ReportMember:
    """One image as the report shows it (not ``imgindex.compare.groups.Member``: this one carries file facts)."""

    image_id: int
    path: str
    folder: str
    width: int
    height: int
    size: int
    format: str | None
    content_hash: str
    is_keeper: bool
    mse_to_keeper: float | None
    rotation: int | None
    mirrored: bool
    keep_reason: str | None = None  # 'rule', 'pinned', 'reference'; None: lower quality, acted on
    matched_by: str | None = None  # 'tone' or 'trimmed' when no pair joining it to its group is a pixels match

    @property
    def kept(self) -> bool:
        """Never acted on: the keeper, a pinned image, an image in a reference folder (as actions/plan.py says)."""
        return self.is_keeper or self.keep_reason is not None


@dataclass(frozen=True)
class ReportGroup:
    group_id: int
    members: tuple[ReportMember, ...]  # keeper first, then the other kept members, then the lower quality

    @property
    def kept(self) -> tuple[ReportMember, ...]:
        return tuple(m for m in self.members if m.kept)

    @property
    def reclaimable(self) -> int:
        """The bytes that acting on this group frees: the members not kept."""
        return sum(m.size for m in self.members if not m.kept)


def load_groups(db: Database, search_id: int) -> list[ReportGroup]:
    """The search's groups, most bytes reclaimable first (ties: group id)."""
    rows = db.execute(
        "SELECT g.group_id, i.id, i.path, i.folder, i.width, i.height, i.size, i.format, i.content_hash, g.is_keeper,"
        " g.mse_to_keeper, g.rotation, g.mirrored, g.keep_reason"
        " FROM group_members g JOIN images i ON i.id = g.image_id WHERE g.search_id = ?"
        " ORDER BY g.group_id, g.is_keeper DESC, g.keep_reason IS NULL, g.mse_to_keeper, i.path",
        [search_id],
    ).fetchall()
    members: dict[int, list[ReportMember]] = {}
    for gid, *fields in rows:
        image_id, path, folder, w, h, size, fmt, digest, keeper, mse, rotation, mirrored, reason = fields
        members.setdefault(gid, []).append(ReportMember(
            image_id, path, folder, w, h, size, fmt, digest, bool(keeper), mse, rotation, bool(mirrored), reason))
    by = _matched_by(db, search_id)
    groups = [ReportGroup(gid, tuple(dataclasses.replace(m, matched_by=by[m.image_id]) if m.image_id in by else m
                                     for m in ms)) for gid, ms in members.items()]
    groups.sort(key=lambda g: (-g.reclaimable, g.group_id))
    return groups


def _matched_by(db: Database, search_id: int) -> dict[int, str]:
    """Images none of whose pairs in the search pixels matched: the signal that did (the first, in
    SIGNALS order, when several)."""
    others: dict[int, set[str]] = {}
    for a, b, signal in db.execute("SELECT image_a, image_b, signal FROM pairs WHERE search_id = ? AND signal != 'pixels'",
                                   [search_id]):
        others.setdefault(a, set()).add(signal)
        others.setdefault(b, set()).add(signal)
    if not others:
        return {}
    listed = json.dumps(sorted(others))
    pixels = {i for pair in db.execute(
        "SELECT image_a, image_b FROM pairs WHERE search_id = ? AND signal = 'pixels' AND"
        " (image_a IN (SELECT value FROM json_each(?)) OR image_b IN (SELECT value FROM json_each(?)))",
        [search_id, listed, listed]) for i in pair}
    return {i: next(s for s in SIGNALS if s in found) for i, found in others.items() if i not in pixels}


def histogram_cap(threshold: float) -> float:
    """How far the threshold view looks: far enough past the threshold to see where distinct photos start."""
    return max(30.0, 4.0 * threshold)


@dataclass(frozen=True)
class ThresholdView:
    """Each image's nearest-neighbour MSE (within ``cap``) and the closest pairs above the threshold."""

    cap: float
    images: int  # the images looked at: all of the search's, or a random sample of them
    nearest: np.ndarray  # MSE to the nearest neighbour of every image that has one within cap
    near_misses: tuple[tuple[ReportMember, ReportMember, float], ...]  # the closest, up to NEAR_MISSES
    near_miss_count: int
    population: int = 0  # the search's images (more than ``images`` when a sample was looked at)

    @property
    def sampled(self) -> bool:
        return self.population > self.images


def threshold_view(db: Database, db_path: str, search_id: int, cap: float, *,
                   processes: int | None = None) -> ThresholdView:
    """Compare the search's images (or, in a large index, a random sample of them) again with a wider
    threshold (nothing is written) to see past it."""
    ids, a, b, mse, population = near_pairs(db, db_path, search_id, cap, processes=processes)
    best = np.full(len(ids), np.inf)
    for side in (a, b):  # (a sample's pairs may have one image outside it)
        at = np.minimum(np.searchsorted(ids, side), max(len(ids) - 1, 0))
        mine = ids[at] == side if len(ids) else np.zeros(len(side), dtype=bool)
        np.minimum.at(best, at[mine], mse[mine])
    matched = {(x, y) for x, y in db.execute("SELECT image_a, image_b FROM pairs WHERE search_id = ?", [search_id])}
    beyond = [k for k in np.argsort(mse, kind="stable").tolist() if (int(a[k]), int(b[k])) not in matched]
    chosen = beyond[:NEAR_MISSES]
    facts = _members(db, {int(a[k]) for k in chosen} | {int(b[k]) for k in chosen})
    near = tuple((facts[int(a[k])], facts[int(b[k])], float(mse[k])) for k in chosen)
    return ThresholdView(cap, len(ids), best[np.isfinite(best)], near, len(beyond), population)


def _members(db: Database, ids: set[int]) -> dict[int, ReportMember]:
    rows = db.execute(
        "SELECT id, path, folder, width, height, size, format, content_hash FROM images"
        " WHERE id IN (SELECT value FROM json_each(?))",
        [json.dumps(sorted(ids))],
    ).fetchall()
    return {r[0]: ReportMember(*r, is_keeper=False, mse_to_keeper=None, rotation=None, mirrored=False) for r in rows}


def histogram(view: ThresholdView) -> tuple[np.ndarray, np.ndarray]:
    """(counts per bin, bin edges) of nearest-neighbour MSE over [0, cap]; each bin is [lo, hi) but the last."""
    edges = np.linspace(0.0, view.cap, HISTOGRAM_BINS + 1)
    counts, _ = np.histogram(view.nearest, bins=edges)
    return counts, edges
