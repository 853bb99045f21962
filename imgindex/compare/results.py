"""Read a search's results back in the shapes users know (difPy's result, lower_quality, stats)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from imgindex.db.queries import resolve_search_id
from imgindex.types import GroupRow

if TYPE_CHECKING:
    from sqlite_utils import Database


def result(db: Database, search_id: int | None = None) -> dict:
    """difPy's shape: {keeper_path: [[match_path, mse_to_keeper], ...]}; nested by root when in_folder."""
    search_id = resolve_search_id(db, search_id)
    in_folder = db.execute("SELECT in_folder FROM searches WHERE id = ?", [search_id]).fetchone()[0]
    out: dict = {}
    keepers: dict[int, str] = {}
    rows = db.execute(
        "SELECT g.group_id, g.is_keeper, i.path, g.mse_to_keeper, g.root FROM group_members g"
        " JOIN images i ON i.id = g.image_id WHERE g.search_id = ?"
        " ORDER BY g.group_id, g.is_keeper DESC, g.mse_to_keeper, i.path",
        [search_id],
    ).fetchall()
    for group_id, is_keeper, path, mse, root in rows:
        target = out.setdefault(root, {}) if in_folder else out
        if is_keeper:
            keepers[group_id] = path
            target[path] = []
        elif group_id in keepers:
            target[keepers[group_id]].append([path, mse])
    return out


def lower_quality(db: Database, search_id: int | None = None) -> list[str]:
    """Every grouped image but those kept (the keeper, pinned images, reference images), in group order."""
    search_id = resolve_search_id(db, search_id)
    return [
        path
        for (path,) in db.execute(
            "SELECT i.path FROM group_members g JOIN images i ON i.id = g.image_id"
            " WHERE g.search_id = ? AND g.is_keeper = 0 AND g.keep_reason IS NULL ORDER BY g.group_id, g.mse_to_keeper, i.path",
            [search_id],
        )
    ]


def search_stats(db: Database, search_id: int | None = None) -> dict:
    """The searches row as a dict (settings, algorithm, counts, timings)."""
    search_id = resolve_search_id(db, search_id)
    cursor = db.execute("SELECT * FROM searches WHERE id = ?", [search_id])
    names = [d[0] for d in cursor.description]
    stats = dict(zip(names, cursor.fetchone()))
    stats["roots"] = json.loads(stats["roots"])
    for flag in ("rotate", "mirror", "same_dim", "in_folder"):
        stats[flag] = bool(stats[flag])
    return stats


def group_rows(db: Database, search_id: int | None = None) -> list[GroupRow]:
    """One row per grouped image, keeper first in each group."""
    search_id = resolve_search_id(db, search_id)
    cursor = db.execute(
        "SELECT g.group_id, i.path, g.is_keeper, g.mse_to_keeper, g.rotation, g.mirrored, i.width, i.height,"
        " i.size, g.root, g.keep_reason FROM group_members g JOIN images i ON i.id = g.image_id WHERE g.search_id = ?"
        " ORDER BY g.group_id, g.is_keeper DESC, g.mse_to_keeper, i.path",
        [search_id],
    )
    return [GroupRow(*row) for row in cursor]
