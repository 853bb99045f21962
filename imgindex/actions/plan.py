"""Plan move-to, delete and undo: which files, and where each would go. Nothing is touched here.

Only ``lower_quality`` images of the latest search are planned, never a pinned keeper or an image
in a reference folder (re-checked against the decisions in force); moves keep folders relative to
the scanned root (under DEST/<root name>/ with several roots) and never plan over a file that
is there (``name (1).ext``). A picture's XMP sidecar goes where the picture goes: losing the
edits of a RAW is losing work. Undo plans the journal's done actions of a run, newest first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from imgindex.actions import fileops
from imgindex.db.decisions import pin_of, reference_folders
from imgindex.db.queries import indexed_roots, resolve_search_id
from imgindex.errors import ActionError
from imgindex.scan.discover import under
from imgindex.types import ActionPlan, PlannedAction, SkippedFile

if TYPE_CHECKING:
    from sqlite_utils import Database

ACTING_KINDS = ("move", "trash", "delete")
UNDO_KINDS = {"move": "move-back", "trash": "restore"}


def plan_move_to(db: Database, destination: str | os.PathLike, groups: Iterable[int] | None = None) -> ActionPlan:
    """Move every lower_quality image of the latest search (of these ``groups``, or all) under DEST,
    keeping folders relative to its root."""
    dest = os.path.abspath(os.path.expanduser(os.fspath(destination)))
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise ActionError(f"{dest} exists and is not a folder: give move-to a folder (it is created if missing).")
    search_id, rows, skipped = _lower_quality_rows(db, groups)
    roots = indexed_roots(db)
    acting_roots = {_root_of(path, roots) for _, path, *_ in rows if not under(path, dest)}
    labelled = len(acting_roots) > 1
    labels = _root_labels(sorted(acting_roots)) if labelled else {}
    actions, taken = [], set()
    found = Sidecars({path for _, path, *_ in rows if not under(path, dest)})
    for image_id, path, size, mtime_ns, content_hash, keeper in rows:
        if under(path, dest):
            skipped.append(SkippedFile(path, f"already inside {dest}"))
            continue
        root = _root_of(path, roots)
        for source in [path, *found.of(path)]:
            relative = os.path.relpath(source, root)
            target = os.path.join(dest, labels[root], relative) if labelled else os.path.join(dest, relative)
            target = fileops.free_name(target, taken)
            taken.add(target)
            if source == path:
                actions.append(PlannedAction("move", path, target, content_hash, size, mtime_ns, image_id, keeper))
            else:
                actions.append(_sidecar_action("move", source, target, keeper, path))
    return ActionPlan("move-to", tuple(actions), tuple(skipped), search_id, destination=dest)


class Sidecars:
    """Finds the XMP sidecars of the files a plan acts on; each folder is listed once per plan."""

    def __init__(self, acting: set[str]):
        self.acting = acting  # every picture the plan acts on
        self.claimed: set[str] = set()  # sidecars already planned, with an earlier picture
        self.folders: dict[str, dict[str, list[str]]] = {}  # folder -> lower-case stem -> its names

    def of(self, path: str) -> list[str]:
        """'name.ext.xmp', and 'name.xmp' unless another file called 'name.*' stays in the folder (a
        RAW and its JPEG share one)."""
        folder, name = os.path.split(path)
        by_stem = self._listing(folder)
        stem = os.path.splitext(name)[0]
        found = [s for s in by_stem.get(name.lower(), []) if s.lower() == name.lower() + ".xmp"]
        named = by_stem.get(stem.lower(), [])
        sharing = [s for s in named if os.path.splitext(s)[0] == stem and s != name and not s.lower().endswith(".xmp")]
        if all(os.path.join(folder, s) in self.acting for s in sharing):
            found += [s for s in named if s.lower() == stem.lower() + ".xmp"]
        out = []
        for s in found:
            full = os.path.join(folder, s)
            if full not in self.claimed and fileops.is_regular(full):
                self.claimed.add(full)
                out.append(full)
        return out

    def _listing(self, folder: str) -> dict[str, list[str]]:
        if folder not in self.folders:
            by_stem: dict[str, list[str]] = {}
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            for n in names:
                by_stem.setdefault(os.path.splitext(n)[0].lower(), []).append(n)
            self.folders[folder] = by_stem
        return self.folders[folder]


class Protected:
    """Why a file must never be moved or deleted, from the decisions in force when it is asked."""

    def __init__(self, db: Database):
        self.db = db
        self.folders = reference_folders(db)

    def reason(self, path: str, content_hash: str | None) -> str | None:
        ref = next((r for r in self.folders if under(os.path.dirname(path), r)), None)
        if ref is not None:
            return f"is in the reference folder {ref}: reference images are never moved or deleted"
        pin = pin_of(self.db, content_hash) if content_hash else None
        if pin is not None:
            return f"is a pinned keeper (decision #{pin}; imgindex unkeep to unpin): never moved or deleted"
        return None


def _sidecar_action(kind: str, source: str, destination: str | None, keeper: str, picture: str) -> PlannedAction:
    st = os.lstat(source)
    return PlannedAction(kind, source, destination, fileops.file_hash(source), st.st_size, st.st_mtime_ns, None,
                         keeper, companion_of=picture)


def plan_delete(db: Database, *, permanent: bool = False, groups: Iterable[int] | None = None) -> ActionPlan:
    """Delete every lower_quality image of the latest search (of these ``groups``, or all): to the trash,
    or for good with ``permanent``."""
    search_id, rows, skipped = _lower_quality_rows(db, groups)
    kind = "delete" if permanent else "trash"
    actions, found = [], Sidecars({path for _, path, *_ in rows})
    for image_id, path, size, mtime_ns, content_hash, keeper in rows:
        actions.append(PlannedAction(kind, path, None, content_hash, size, mtime_ns, image_id, keeper))
        actions += [_sidecar_action(kind, s, None, keeper, path) for s in found.of(path)]
    return ActionPlan("delete", tuple(actions), tuple(skipped), search_id, permanent=permanent)


def plan_undo(db: Database, *, run_id: int | None = None, action_id: int | None = None) -> ActionPlan:
    """Put back what a run (the latest by default) or one action moved or trashed."""
    if action_id is not None:
        rows = db.execute(f"SELECT {_JOURNAL_COLUMNS} FROM actions WHERE id = ?", [action_id]).fetchall()
        if not rows:
            raise ActionError(f"There is no action {action_id}; see `SELECT * FROM actions`.")
        if rows[0][1] not in ACTING_KINDS or rows[0][7] != "done":
            raise ActionError(f"Action {action_id} is a {rows[0][1]} that is {rows[0][7]}: there is nothing to undo.")
    else:
        if run_id is None:
            found = db.execute(
                "SELECT max(run_id) FROM actions WHERE outcome = 'done' AND kind IN ('move', 'trash', 'delete')"
            ).fetchone()[0]
            if found is None:
                raise ActionError("Nothing to undo: no move-to or delete has moved or deleted a file in this index.")
            run_id = found
        elif db.execute("SELECT 1 FROM action_runs WHERE id = ?", [run_id]).fetchone() is None:
            raise ActionError(f"There is no run {run_id}; see `SELECT * FROM action_runs`.")
        rows = db.execute(
            f"SELECT {_JOURNAL_COLUMNS} FROM actions WHERE run_id = ? AND outcome = 'done'"
            " AND kind IN ('move', 'trash', 'delete') ORDER BY id DESC",
            [run_id],
        ).fetchall()
        if not rows:
            raise ActionError(f"Run {run_id} has nothing left to undo.")
    actions, skipped = [], []
    for aid, kind, source, destination, content_hash, size, image_id, _outcome in rows:
        if kind == "delete":
            skipped.append(SkippedFile(source, "was deleted with --permanent: it cannot be brought back"))
        elif destination is None:
            skipped.append(SkippedFile(source, "went to a system trash imgindex cannot read: restore it from the trash"))
        else:
            actions.append(PlannedAction(UNDO_KINDS[kind], destination, source, content_hash, size, None, image_id,
                                         undoes=aid))
    return ActionPlan("undo", tuple(actions), tuple(skipped))


_JOURNAL_COLUMNS = "id, kind, source, destination, content_hash, size, image_id, outcome"


def _lower_quality_rows(db: Database, groups: Iterable[int] | None = None) -> tuple[int, list[tuple], list[SkippedFile]]:
    """(image_id, path, size, mtime_ns, content_hash, keeper path) of each member of the latest search
    that is not kept, and the files left alone because a decision protects them now."""
    search_id = resolve_search_id(db, None)
    rows = db.execute(
        "SELECT i.id, i.path, i.size, i.mtime_ns, i.content_hash, k.path FROM group_members g"
        " JOIN images i ON i.id = g.image_id"
        " JOIN group_members gk ON gk.search_id = g.search_id AND gk.group_id = g.group_id AND gk.is_keeper = 1"
        " JOIN images k ON k.id = gk.image_id"
        " WHERE g.search_id = ? AND g.is_keeper = 0 AND g.keep_reason IS NULL"
        + ("" if groups is None else " AND g.group_id IN (SELECT value FROM json_each(?))")
        + " ORDER BY g.group_id, g.mse_to_keeper, i.path",
        [search_id] + ([] if groups is None else [json.dumps(sorted({int(g) for g in groups}))]),
    ).fetchall()
    protected = Protected(db)
    reasons = [protected.reason(r[1], r[4]) for r in rows]
    skipped = [SkippedFile(r[1], why) for r, why in zip(rows, reasons) if why]
    return search_id, [r for r, why in zip(rows, reasons) if not why], skipped


def _root_of(path: str, roots: list[str]) -> str:
    """The deepest indexed root holding ``path``; its folder when none does."""
    holding = [r for r in roots if under(path, r)]
    return max(holding, key=len) if holding else os.path.dirname(path)


def _root_labels(roots: list[str]) -> dict[str, str]:
    """A folder name under DEST for each root: its base name, made unique."""
    labels, used = {}, set()
    for root in roots:
        base = os.path.basename(root.rstrip(os.sep)) or "root"
        label, n = base, 1
        while label in used:
            n += 1
            label = f"{base}-{n}"
        used.add(label)
        labels[root] = label
    return labels
