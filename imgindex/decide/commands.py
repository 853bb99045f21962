"""The decision commands: check what the user gave, then record it (``record``).

Not duplicates are stored per pair of content hashes, pins per content hash (with the path
pinned, for when byte copies exist), reference folders by absolute path. Deciding what is
already decided changes nothing; deciding the same thing differently replaces the earlier
decision and says so.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgindex.db.decisions import images_concerned, members_key
from imgindex.db.runs import now
from imgindex.db.queries import indexed_roots
from imgindex.decide import record
from imgindex.errors import DecisionError
from imgindex.scan.discover import under
from imgindex.types import DecisionReport

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlite_utils import Database


@dataclass(frozen=True)
class Image:
    id: int
    path: str
    content_hash: str


def resolve(db: Database, paths: Iterable[str]) -> tuple[list[Image], list[str]]:
    """The indexed images at ``paths`` (in order, each once), and notes on paths given twice."""
    images, notes, seen = [], [], set()
    for given in paths:
        path = os.path.abspath(os.path.expanduser(os.fspath(given)))
        if path in seen:
            notes.append(f"{path} was given twice; it counts once.")
            continue
        seen.add(path)
        row = db.execute("SELECT id, path, content_hash FROM images WHERE path = ?", [path]).fetchone()
        if row is None:
            hint = ("it is a folder: give image files" if os.path.isdir(path) else
                    "scan its folder first (imgindex scan DIR)" if os.path.exists(path) else "there is no such file")
            raise DecisionError(f"{path} is not in the index: {hint}.")
        images.append(Image(*row))
    return images, notes


def ignore(db: Database, paths: Iterable[str], *, note: str | None = None) -> DecisionReport:
    """Every two of these images are different photos: their pair is never reported again."""
    images, notes = resolve(db, paths)
    if len(images) < 2:
        raise DecisionError("Give at least two different images: a decision 'not duplicates' is about a pair.")
    matched = _matched_pairs(db, [i.id for i in images])
    added, unchanged, replaced, not_matching = [], [], [], 0
    with db.atomic():
        for a, b in itertools.combinations(images, 2):
            if a.content_hash == b.content_hash:
                notes.append(f"{a.path} and {b.path} are byte-identical copies (same SHA-256), so duplicates by"
                             " definition: not recorded. To keep both, pin them (imgindex keep).")
                continue
            a, b = sorted((a, b), key=lambda i: i.content_hash)
            not_matching += (min(a.id, b.id), max(a.id, b.id)) not in matched
            old = record.active(db, "not-duplicates", a.content_hash, b.content_hash)
            if old is not None and old.note == note:
                unchanged.append(old)
                continue
            replaced += [old] if old else []
            added.append(record.add(db, "not-duplicates", hash_a=a.content_hash, hash_b=b.content_hash, path_a=a.path,
                                    path_b=b.path, note=note, replaces=old))
    if not added and not unchanged:
        raise DecisionError("Nothing recorded: " + " ".join(notes))
    if not_matching:
        notes.append(f"{not_matching} of these pairs are not a match in the latest search: the decision is kept"
                     " for the future (a later search never reports them).")
    return DecisionReport("ignore", tuple(added), (), tuple(replaced), tuple(unchanged), tuple(notes))


def group_paths(db: Database, group_id: int) -> list[str]:
    """The paths of a group of the latest search."""
    rows = db.execute("SELECT path FROM match_groups WHERE group_id = ? ORDER BY is_keeper DESC, path",
                      [group_id]).fetchall()
    if not rows:
        raise DecisionError(f"The latest search has no group {group_id}: see `imgindex search` or the match_groups"
                            " view.")
    return [r[0] for r in rows]


def unignore(db: Database, paths: Iterable[str] = (), *, decision_ids: Iterable[int] = ()) -> DecisionReport:
    """Take back 'not duplicates' between every two of these images (or the decisions by id)."""
    images, notes = resolve(db, paths)
    decision_ids = list(decision_ids)
    found = [d for d in (record.by_id(db, i) for i in decision_ids) if d is not None and d.kind == "not-duplicates"]
    if len(found) < len(decision_ids):
        raise DecisionError("Some of these ids are not decisions 'not duplicates' in force: see imgindex ignore --list.")
    for a, b in itertools.combinations(images, 2):
        low, high = sorted((a.content_hash, b.content_hash))
        old = record.active(db, "not-duplicates", low, high)
        found += [old] if old else []
    if not found:
        raise DecisionError("There is no decision 'not duplicates' between these images: see imgindex ignore --list.")
    return _revoke_all(db, "unignore", found, notes)


def keep(db: Database, paths: Iterable[str], *, note: str | None = None) -> DecisionReport:
    """Pin each image as the keeper of whatever group it is in, now and after later searches."""
    images, notes = resolve(db, paths)
    if not images:
        raise DecisionError("Give the images to keep.")
    added, unchanged, replaced = [], [], []
    with db.atomic():
        for image in images:
            old = record.active(db, "keep", image.content_hash)
            if old is not None and old.paths == (image.path,) and old.note == note:
                unchanged.append(old)
                continue
            if old is not None and old.paths != (image.path,):
                notes.append(f"{image.path} is a byte copy of {old.paths[0]}, pinned before: the pin moves to it.")
            replaced += [old] if old else []
            added.append(record.add(db, "keep", hash_a=image.content_hash, path_a=image.path, note=note, replaces=old))
    return DecisionReport("keep", tuple(added), (), tuple(replaced), tuple(unchanged), tuple(notes))


def unkeep(db: Database, paths: Iterable[str]) -> DecisionReport:
    """Unpin these images: the keeper rule chooses again."""
    images, notes = resolve(db, paths)
    found = [d for d in (record.active(db, "keep", i.content_hash) for i in images) if d is not None]
    if not found:
        raise DecisionError("None of these images is pinned: see imgindex keep --list.")
    return _revoke_all(db, "unkeep", found, notes)


def add_reference(db: Database, folders: Iterable[str], *, note: str | None = None) -> DecisionReport:
    """Make folders reference folders: their images are kept, never acted on, not compared with each other."""
    roots = indexed_roots(db)
    added, unchanged, notes = [], [], []
    for folder in _folders(folders):
        if not os.path.isdir(folder):
            raise DecisionError(f"Reference folder {folder} does not exist or is not a folder.")
        if not any(under(folder, r) for r in roots):
            raise DecisionError(f"Reference folder {folder} is not under a scanned folder: scan it first"
                                " (imgindex scan DIR --reference DIR scans and marks it in one go).")
        outer = next((d for d in record.listing(db, "reference") if under(folder, d.paths[0]) and d.paths[0] != folder),
                     None)
        if outer is not None:
            notes.append(f"{folder} is inside the reference folder {outer.paths[0]} already.")
        old = record.active(db, "reference", None, path_a=folder)
        if old is not None:
            unchanged.append(old)
            continue
        with db.atomic():
            added.append(record.add(db, "reference", path_a=folder, note=note))
    return DecisionReport("reference", tuple(added), unchanged=tuple(unchanged), notes=tuple(notes))


def remove_reference(db: Database, folders: Iterable[str]) -> DecisionReport:
    """Folders are no longer references: the next search compares their images with each other too."""
    found = []
    for folder in _folders(folders):
        old = record.active(db, "reference", None, path_a=folder)
        if old is None:
            now = ", ".join(d.paths[0] for d in record.listing(db, "reference")) or "none"
            raise DecisionError(f"{folder} is not a reference folder (reference folders: {now}).")
        found.append(old)
    return _revoke_all(db, "unreference", found, ["The next search compares their images with each other."])


def _revoke_all(db: Database, command: str, found: list, notes: list[str]) -> DecisionReport:
    """Take these decisions back in one transaction."""
    with db.atomic():
        for d in found:
            record.revoke(db, d)
    return DecisionReport(command, removed=tuple(found), notes=tuple(notes))


def _folders(folders: Iterable[str]) -> list[str]:
    out = []
    for f in folders:
        path = os.path.abspath(os.path.expanduser(os.fspath(f)))
        if path not in out:
            out.append(path)
    return out


def _matched_pairs(db: Database, ids: list[int]) -> set[tuple[int, int]]:
    """The pairs among ``ids`` that the latest search found."""
    rows = db.execute(
        "SELECT image_a, image_b FROM pairs WHERE search_id = (SELECT id FROM latest_search)"
        " AND image_a IN (SELECT value FROM json_each(?)) AND +image_b IN (SELECT value FROM json_each(?))",
        [str(ids), str(ids)]).fetchall()
    return {tuple(r) for r in rows}


def touched(db: Database, report: DecisionReport) -> set[int]:
    """The images whose groups a decision report may change (by content hash, or under a reference folder)."""
    changed = report.added + report.removed + report.replaced
    hashes = {h for d in changed for h in d.hashes}
    folders = {d.paths[0] for d in changed if d.kind == "reference"}
    return images_concerned(db, hashes, folders)


def mark_reviewed(db: Database, group_ids: Iterable[int], *, reviewed: bool = True) -> int:
    """Mark groups of the latest search as looked at and accepted (or not): how many changed."""
    changed = 0
    with db.atomic():
        for group_id in group_ids:
            rows = db.execute("SELECT i.content_hash, i.path FROM match_groups g JOIN images i ON i.id = g.image_id"
                              " WHERE g.group_id = ?", [group_id]).fetchall()
            if not rows:
                raise DecisionError(f"The latest search has no group {group_id}.")
            key = members_key(r[0] for r in rows)
            if reviewed:
                changed += db.execute("INSERT OR IGNORE INTO reviews VALUES (?, ?, ?)",
                                      [key, now(), json.dumps(sorted(r[1] for r in rows))]).rowcount
            else:
                changed += db.execute("DELETE FROM reviews WHERE members = ?", [key]).rowcount
    return changed
