"""Move-to, delete and undo over the latest search's ``lower_quality`` images, journaled in ``actions``.

The rules that make losing a picture impossible:
- only ``lower_quality`` images are touched; a group whose keeper is missing or changed is left alone;
- every file is re-checked (size, mtime, SHA-256) right before it is touched; a changed one is skipped;
- a move never replaces anything (``fileops``), and a copy across devices is verified before the
  source goes;
- each file's action is committed to ``actions`` as 'planned' before the file is touched and
  marked 'done' (with the index update) after, so an interrupted run is finished or reverted
  from the journal and the disk (``recover``), and ``undo`` can put files back.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlite_utils import Database

from imgindex import fileops, pids
from imgindex.errors import ImgIndexError
from imgindex.results import resolve_search_id

log = logging.getLogger(__name__)

ACTING_KINDS = ("move", "trash", "delete")
UNDO_KINDS = {"move": "move-back", "trash": "restore"}


class ActionError(ImgIndexError):
    """An action command cannot start (bad DEST, another run in progress, nothing to undo...)."""


@dataclass(frozen=True)
class PlannedAction:
    """One file to act on; ``destination`` is where it will go (None: deleted)."""

    kind: str  # 'move', 'trash', 'delete', 'move-back', 'restore'
    source: str
    destination: str | None
    content_hash: str
    size: int
    mtime_ns: int | None = None
    image_id: int | None = None
    keeper: str | None = None
    undoes: int | None = None


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class ActionPlan:
    """What a command would do; ``--dry-run`` shows it, ``apply`` does it (re-checking every file)."""

    command: str  # 'move-to', 'delete', 'undo'
    actions: tuple[PlannedAction, ...]
    skipped: tuple[SkippedFile, ...]
    search_id: int | None = None
    destination: str | None = None
    permanent: bool = False

    @property
    def bytes(self) -> int:
        return sum(a.size for a in self.actions)


@dataclass(frozen=True)
class ActionProgress:
    done: int
    total: int
    bytes_done: int
    bytes_total: int
    path: str
    elapsed: float


@dataclass(frozen=True)
class ActionOutcome:
    action_id: int | None
    kind: str
    source: str
    destination: str | None
    outcome: str  # 'done', 'skipped', 'failed'
    message: str | None = None


@dataclass(frozen=True)
class ActionReport:
    run_id: int
    command: str
    outcomes: tuple[ActionOutcome, ...]
    duration: float
    reindexed: int = 0
    recovered: tuple[ActionOutcome, ...] = field(default=())

    def _count(self, outcome: str) -> int:
        return sum(o.outcome == outcome for o in self.outcomes)

    @property
    def done(self) -> int:
        return self._count("done")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def paths(self) -> list[str]:
        """Where each file done now is (None for deleted or trashed ones)."""
        return [o.destination for o in self.outcomes if o.outcome == "done"]


# ---------------------------------------------------------------- planning


def plan_move_to(db: Database, destination: str | os.PathLike) -> ActionPlan:
    """Move every lower_quality image of the latest search under DEST, keeping folders relative to its root."""
    dest = os.path.abspath(os.path.expanduser(os.fspath(destination)))
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise ActionError(f"{dest} exists and is not a folder: give move-to a folder (it is created if missing).")
    search_id, rows = _lower_quality_rows(db)
    roots = indexed_roots(db)
    acting_roots = {_root_of(path, roots) for _, path, *_ in rows if not _inside(path, dest)}
    labelled = len(acting_roots) > 1
    labels = _root_labels(sorted(acting_roots)) if labelled else {}
    actions, skipped, taken = [], [], set()
    for image_id, path, size, mtime_ns, content_hash, keeper in rows:
        if _inside(path, dest):
            skipped.append(SkippedFile(path, f"already inside {dest}"))
            continue
        root = _root_of(path, roots)
        relative = os.path.relpath(path, root)
        target = os.path.join(dest, labels[root], relative) if labelled else os.path.join(dest, relative)
        target = fileops.free_name(target, taken)
        taken.add(target)
        actions.append(PlannedAction("move", path, target, content_hash, size, mtime_ns, image_id, keeper))
    return ActionPlan("move-to", tuple(actions), tuple(skipped), search_id, destination=dest)


def plan_delete(db: Database, *, permanent: bool = False) -> ActionPlan:
    """Delete every lower_quality image of the latest search: to the trash, or for good with ``permanent``."""
    search_id, rows = _lower_quality_rows(db)
    kind = "delete" if permanent else "trash"
    actions = tuple(
        PlannedAction(kind, path, None, content_hash, size, mtime_ns, image_id, keeper)
        for image_id, path, size, mtime_ns, content_hash, keeper in rows
    )
    return ActionPlan("delete", actions, (), search_id, permanent=permanent)


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


def _lower_quality_rows(db: Database) -> tuple[int, list[tuple]]:
    """(image_id, path, size, mtime_ns, content_hash, keeper path) of each non-keeper of the latest search."""
    search_id = resolve_search_id(db, None)
    rows = db.execute(
        "SELECT i.id, i.path, i.size, i.mtime_ns, i.content_hash, k.path FROM group_members g"
        " JOIN images i ON i.id = g.image_id"
        " JOIN group_members gk ON gk.search_id = g.search_id AND gk.group_id = g.group_id AND gk.is_keeper = 1"
        " JOIN images k ON k.id = gk.image_id"
        " WHERE g.search_id = ? AND g.is_keeper = 0 ORDER BY g.group_id, g.mse_to_keeper, i.path",
        [search_id],
    ).fetchall()
    return search_id, rows


def indexed_roots(db: Database) -> list[str]:
    """Every folder a completed scan covered (a file under one of them belongs in the index)."""
    roots: set[str] = set()
    for (value,) in db.execute("SELECT DISTINCT roots FROM scans WHERE status = 'completed'"):
        roots.update(json.loads(value))
    return sorted(roots)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _root_of(path: str, roots: list[str]) -> str:
    """The deepest indexed root holding ``path``; its folder when none does."""
    holding = [r for r in roots if _inside(path, r)]
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


# ---------------------------------------------------------------- doing


def apply(
    db: Database,
    db_path: str,
    plan: ActionPlan,
    *,
    progress: Callable[[ActionProgress], None] | None = None,
) -> ActionReport:
    """Carry out ``plan``, file by file, journaled; see the module docstring for the guarantees."""
    # A newer search (say, the watcher's) since planning is no reason to stop: the plan is what
    # the user confirmed, and every file and keeper is checked against the disk before acting.
    recovered = recover(db)
    run = _Run(db, plan, progress)
    try:
        for action in plan.actions:
            run.act(action)
    except BaseException:  # Ctrl-C, SIGTERM: wherever it landed, settle this run's files from the disk
        for (action_id,) in db.execute("SELECT id FROM actions WHERE run_id = ? AND outcome = 'planned'",
                                       [run.run_id]).fetchall():
            settle_planned(db, action_id)
        run.finish("interrupted")
        raise
    run.finish("completed")
    reindexed = _reindex(db, db_path, run.reindex) if run.reindex else 0
    return ActionReport(run.run_id, plan.command, tuple(run.outcomes), time.monotonic() - run.started, reindexed,
                        recovered)


class _Run:
    """One command's journal: a row in action_runs and one in actions per file."""

    def __init__(self, db: Database, plan: ActionPlan, progress):
        self.db, self.plan, self.progress = db, plan, progress
        self.roots = indexed_roots(db)
        self.outcomes: list[ActionOutcome] = []
        self.reindex: set[str] = set()
        self.keepers: dict[str, str | None] = {}
        self.taken = {a.destination for a in plan.actions if a.destination}
        self.started = time.monotonic()
        self.bytes_done = 0
        db.execute("PRAGMA synchronous=FULL")  # the journal must survive a power cut, not only a crash
        self.run_id = _start_run(db, plan)

    def act(self, action: PlannedAction) -> None:
        reason = self._recheck(action)
        if reason:
            self._journal_skipped(action, reason)
        else:
            self._carry_out(action)
        if self.progress is not None:
            self.progress(ActionProgress(len(self.outcomes), len(self.plan.actions), self.bytes_done,
                                         self.plan.bytes, action.source, time.monotonic() - self.started))

    def _recheck(self, action: PlannedAction) -> str | None:
        """Why this file must be left alone now, or None."""
        try:
            return self._problem(action)
        except OSError as exc:  # unreadable file, unlistable folder: never guess, leave it
            if isinstance(exc, FileNotFoundError) and exc.filename == action.source:
                return "is gone: it was moved or deleted since the search"
            return f"cannot be checked ({exc.strerror or exc}): left alone"

    def _problem(self, action: PlannedAction) -> str | None:
        if action.keeper is not None:
            reason = self.keepers.get(action.keeper, "")
            if reason == "":
                reason = self.keepers[action.keeper] = _keeper_problem(self.db, action.keeper)
            if reason:
                return reason
        st = os.lstat(action.source)  # FileNotFoundError: reported as gone, below
        if not stat.S_ISREG(st.st_mode):
            return "is no longer a regular file"
        if st.st_size != action.size or (action.mtime_ns is not None and st.st_mtime_ns != action.mtime_ns):
            return "changed since it was indexed (size or modification time): scan and search again"
        if fileops.file_hash(action.source) != action.content_hash:
            return "changed since it was indexed (content): scan and search again"
        if action.keeper is not None and os.path.samefile(action.source, action.keeper):
            return f"is the same file as its keeper {action.keeper} (a hard link or another name for it)"
        if action.kind in UNDO_KINDS.values() and os.path.lexists(action.destination):
            return f"something else is at {action.destination} now: move it away and undo again"
        return None

    def _carry_out(self, action: PlannedAction) -> None:
        destination = action.destination
        if action.kind == "move" and os.path.lexists(destination):
            destination = fileops.free_name(destination, self.taken)  # appeared since planning
            self.taken.add(destination)
        action_id = self._journal_planned(action, destination)
        try:
            destination = self._touch_file(action, action_id, destination)
        except fileops.ContentChanged as exc:
            self._finish_action(action_id, action, None, "skipped", str(exc))
            return
        except OSError as exc:
            message = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            self._finish_action(action_id, action, None, "failed", message)
            log.warning("%s %s failed: %s", action.kind, action.source, message)
            return
        self.bytes_done += action.size
        self._finish_action(action_id, action, destination, "done", None)

    def _touch_file(self, action: PlannedAction, action_id: int, destination: str | None) -> str | None:
        tag = str(action_id)
        if action.kind == "delete":
            os.unlink(action.source)
            return None
        if action.kind == "trash":
            return fileops.trash(action.source, action.content_hash)
        if action.kind == "restore":
            fileops.restore_trashed(action.source, destination, action.content_hash, tag)
            return destination
        for _ in range(100):  # move, move-back: a name taken in the meantime means the next free one
            try:
                fileops.move_file(action.source, destination, action.content_hash, tag)
                return destination
            except FileExistsError:
                if action.kind != "move":
                    raise OSError(f"{destination} appeared while moving back; nothing was replaced") from None
                destination = fileops.free_name(destination, self.taken)
                self.taken.add(destination)
                self.db.execute("UPDATE actions SET destination = ? WHERE id = ?", [destination, action_id])
        raise OSError(f"no free name for {destination}")

    def _journal_planned(self, action: PlannedAction, destination: str | None) -> int:
        cursor = self.db.execute(
            "INSERT INTO actions (run_id, kind, image_id, source, destination, content_hash, size, keeper, undoes,"
            " planned_at, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned')",
            [self.run_id, action.kind, action.image_id, action.source, destination, action.content_hash,
             action.size, action.keeper, action.undoes, _now()],
        )
        return cursor.lastrowid

    def _journal_skipped(self, action: PlannedAction, reason: str) -> None:
        action_id = self._journal_planned(action, action.destination)
        self._finish_action(action_id, action, action.destination, "skipped", reason)

    def _finish_action(self, action_id: int, action: PlannedAction, destination: str | None, outcome: str,
                       message: str | None) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE actions SET outcome = ?, message = ?, destination = ?, done_at = ? WHERE id = ?",
                [outcome, message, destination if outcome == "done" else action.destination, _now(), action_id],
            )
            if outcome == "done":
                follow_in_index(self.db, self.roots, action, destination, self.reindex)
                if action.undoes is not None:
                    self.db.execute("UPDATE actions SET outcome = 'undone' WHERE id = ?", [action.undoes])
        self.outcomes.append(ActionOutcome(action_id, action.kind, action.source, destination, outcome, message))

    def finish(self, status: str) -> None:
        counts = {k: sum(o.outcome == k for o in self.outcomes) for k in ("done", "skipped", "failed")}
        with self.db.atomic():
            self.db.execute(
                "UPDATE action_runs SET status = ?, finished_at = ?, done = ?, skipped = ?, failed = ? WHERE id = ?",
                [status, _now(), counts["done"], counts["skipped"], counts["failed"], self.run_id],
            )
            if self.plan.search_id is not None:
                _drop_lone_keepers(self.db, self.plan.search_id)
        self.db.execute("PRAGMA synchronous=NORMAL")


def _start_run(db: Database, plan: ActionPlan) -> int:
    with db.atomic():
        busy = db.execute("SELECT id, pid, process_start, host FROM action_runs WHERE status = 'running'").fetchall()
        for run_id, pid, started, host in busy:
            if host != socket.gethostname() or pids.alive(pid, started):
                raise ActionError(f"Another imgindex action (run {run_id}, pid {pid} on {host}) is working on this "
                                  "index: wait for it to finish.")
        cursor = db.execute(
            "INSERT INTO action_runs (command, search_id, destination, permanent, pid, process_start, host,"
            " started_at, status, planned) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
            [plan.command, plan.search_id, plan.destination, int(plan.permanent), os.getpid(),
             pids.process_start(os.getpid()), socket.gethostname(), _now(), len(plan.actions)],
        )
        return cursor.lastrowid


def _keeper_problem(db: Database, keeper: str) -> str | None:
    """None when the keeper is on disk as indexed; otherwise why its group must not be touched."""
    row = db.execute("SELECT size, mtime_ns, content_hash FROM images WHERE path = ?", [keeper]).fetchone()
    problem = f"its keeper {keeper} "
    if row is None or not fileops.is_regular(keeper):
        return problem + "is missing: nothing in its group is touched"
    size, mtime_ns, content_hash = row
    st = os.lstat(keeper)
    if st.st_size != size or st.st_mtime_ns != mtime_ns or fileops.file_hash(keeper) != content_hash:
        return problem + "changed since it was indexed: nothing in its group is touched; scan and search again"
    return None


def follow_in_index(db: Database, roots: list[str], action: PlannedAction, destination: str | None,
                    reindex: set[str]) -> None:
    """Give a moved image its new path (or drop it when it left the indexed roots); drop deleted ones."""
    old_path = action.source
    new_path = destination if action.kind in ("move", "move-back", "restore") else None
    if new_path is not None and any(_inside(new_path, r) for r in roots):
        row = db.execute("SELECT id FROM images WHERE path = ?", [old_path]).fetchone()
        if row is None:
            reindex.add(os.path.dirname(new_path))  # it left the index when it was moved or trashed
            return
        st = os.lstat(new_path)
        db.execute("DELETE FROM images WHERE path = ? AND id != ?", [new_path, row[0]])  # a stale row
        db.execute(
            "UPDATE images SET path = ?, folder = ?, size = ?, mtime_ns = ?, moved_at = ? WHERE id = ?",
            [new_path, os.path.dirname(new_path), st.st_size, st.st_mtime_ns, _now(), row[0]],
        )
    else:
        db.execute("DELETE FROM images WHERE path = ?", [old_path])


def _drop_lone_keepers(db: Database, search_id: int) -> None:
    """A group whose other members all left the index is no longer a match group."""
    db.execute(
        "DELETE FROM group_members WHERE search_id = ? AND group_id IN (SELECT group_id FROM group_members"
        " WHERE search_id = ? GROUP BY group_id HAVING count(*) < 2)",
        [search_id, search_id],
    )


def _reindex(db: Database, db_path: str, folders: set[str]) -> int:
    """Index files put back where the index had dropped them (their folders only, not recursively)."""
    from imgindex import indexer, store

    px_size = int(store.get_setting(db, "px_size") or 50)
    present = sorted(f for f in folders if os.path.isdir(f))
    if not present:
        return 0
    report = indexer.scan(db, db_path, present, flat_roots=present, px_size=px_size, processes=1)
    return report.added + report.moved


# ---------------------------------------------------------------- recovery


def recover(db: Database) -> tuple[ActionOutcome, ...]:
    """Settle actions left 'planned' by a run that died (SIGKILL, power cut), from what is on disk."""
    live, dead = set(), set()
    for run_id, pid, started, host in db.execute(
        "SELECT id, pid, process_start, host FROM action_runs WHERE status = 'running'"
    ).fetchall():
        (live if host != socket.gethostname() or pids.alive(pid, started) else dead).add(run_id)
    planned = db.execute("SELECT id, run_id FROM actions WHERE outcome = 'planned' ORDER BY id").fetchall()
    settled = tuple(settle_planned(db, action_id) for action_id, run_id in planned if run_id not in live)
    for run_id in dead:
        db.execute("UPDATE action_runs SET status = 'interrupted', finished_at = ? WHERE id = ?", [_now(), run_id])
    if settled:
        log.warning("Settled %d action(s) an interrupted run left unfinished", len(settled))
    return settled


def settle_planned(db: Database, action_id: int) -> ActionOutcome:
    """Decide from the disk whether a 'planned' action happened; finish a move caught half-way."""
    (kind, image_id, source, destination, content_hash, size, keeper, undoes) = db.execute(
        "SELECT kind, image_id, source, destination, content_hash, size, keeper, undoes FROM actions"
        " WHERE id = ?",
        [action_id],
    ).fetchone()
    action = PlannedAction(kind, source, destination, content_hash, size, None, image_id, keeper, undoes)
    if destination and kind != "trash":
        partial = fileops.partial_path(destination, str(action_id))
        if os.path.lexists(partial):
            os.unlink(partial)  # our own unfinished copy
    source_there = fileops.is_regular(source)
    if kind in ("move", "move-back", "restore"):
        dest_ok = destination is not None and fileops.is_regular(destination) and (
            (source_there and os.path.samefile(source, destination))
            or fileops.file_hash(destination) == content_hash
        )
        if dest_ok and source_there:
            os.unlink(source)  # the link or verified copy is in place: finish the move
            source_there = False
        happened = dest_ok and not source_there
    else:
        happened = not source_there
        if kind == "trash" and happened:
            destination = fileops.find_trashed(source, content_hash)
    outcome = "done" if happened else "failed"
    message = "interrupted; finished from the journal" if happened else "interrupted before the file was touched"
    reindex: set[str] = set()
    with db.atomic():
        db.execute("UPDATE actions SET outcome = ?, message = ?, destination = ?, done_at = ? WHERE id = ?",
                   [outcome, message, destination, _now(), action_id])
        if happened:
            follow_in_index(db, indexed_roots(db), action, destination, reindex)
            if undoes is not None:
                db.execute("UPDATE actions SET outcome = 'undone' WHERE id = ?", [undoes])
    return ActionOutcome(action_id, kind, source, destination, outcome, message)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
