"""Carry out an action plan, file by file, each journaled before it is touched.

The rules that make losing a picture impossible:
- every file is re-checked (size, mtime, SHA-256, and the decisions: never a pinned keeper or a
  reference image) right before it is touched; a changed one is skipped, and so is every file of a group whose keeper is missing or changed;
- a move never replaces anything (``fileops``), and a copy across devices is verified before the
  source goes;
- the journal (``journal``) lets an interrupted run be finished or reverted from the disk.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from imgindex.actions import fileops
from imgindex.actions.journal import finish_run, journal_planned, record_outcome, recover, settle_planned, start_run
from imgindex.actions.plan import ACTING_KINDS, UNDO_KINDS, Protected
from imgindex.db.connect import abandon_transaction
from imgindex.db.queries import indexed_roots
from imgindex.types import ActionOutcome, ActionPlan, ActionProgress, ActionReport, PlannedAction

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)


def apply(db: Database, plan: ActionPlan, *,
          progress: Callable[[ActionProgress], None] | None = None) -> ActionReport:
    """Carry out ``plan``; the report's ``reindex_folders`` are where files came back unindexed."""
    # A newer search (say, the watcher's) since planning is no reason to stop: the plan is what
    # the user confirmed, and every file and keeper is checked against the disk before acting.
    recovered = recover(db)
    run = _Run(db, plan, progress)
    try:
        for action in plan.actions:
            run.act(action)
    except BaseException:  # Ctrl-C, SIGTERM: wherever it landed, settle this run's files from the disk
        abandon_transaction(db)
        for (action_id,) in db.execute("SELECT id FROM actions WHERE run_id = ? AND outcome = 'planned'",
                                       [run.run_id]).fetchall():
            settle_planned(db, action_id)
        run.finish("interrupted")
        raise
    run.finish("completed")
    return ActionReport(run.run_id, plan.command, tuple(run.outcomes), time.monotonic() - run.started,
                        recovered=recovered, reindex_folders=tuple(sorted(run.reindex)))


class _Run:
    """One command: its row in action_runs, and the check and journal around each file."""

    def __init__(self, db: Database, plan: ActionPlan, progress):
        self.db, self.plan, self.progress = db, plan, progress
        self.roots = indexed_roots(db)
        self.protected = Protected(db)  # decisions made since planning count: a pinned file is never touched
        self.outcomes: list[ActionOutcome] = []
        self.reindex: set[str] = set()
        self.keepers: dict[str, str | None] = {}
        self.done: set[str] = set()  # sources acted on in this run: a sidecar follows only those
        self.taken = {a.destination for a in plan.actions if a.destination}
        self.started = time.monotonic()
        self.bytes_done = 0
        db.execute("PRAGMA synchronous=FULL")  # the journal must survive a power cut, not only a crash
        self.run_id = start_run(db, plan)

    def act(self, action: PlannedAction) -> None:
        reason = self._recheck(action)
        if reason:
            action_id = journal_planned(self.db, self.run_id, action, action.destination)
            self._settle(action_id, action, action.destination, "skipped", reason)
        else:
            self._carry_out(action)
        if self.progress is not None:
            self.progress(ActionProgress(len(self.outcomes), len(self.plan.actions), self.bytes_done,
                                         self.plan.bytes, action.source, time.monotonic() - self.started))

    def finish(self, status: str) -> None:
        finish_run(self.db, self.run_id, status, self.outcomes, self.plan.search_id)
        self.db.execute("PRAGMA synchronous=NORMAL")

    def _recheck(self, action: PlannedAction) -> str | None:
        """Why this file must be left alone now, or None."""
        try:
            return self._problem(action)
        except OSError as exc:  # unreadable file, unlistable folder: never guess, leave it
            if isinstance(exc, FileNotFoundError) and exc.filename == action.source:
                return "is gone: it was moved or deleted since the search"
            return f"cannot be checked ({exc.strerror or exc}): left alone"

    def _problem(self, action: PlannedAction) -> str | None:
        if action.kind in ACTING_KINDS and action.companion_of is None:
            reason = self.protected.reason(action.source, action.content_hash)
            if reason:
                return reason
        if action.companion_of is not None and action.companion_of not in self.done:
            return f"its picture {action.companion_of} was left alone, so its sidecar stays with it"
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
        action_id = journal_planned(self.db, self.run_id, action, destination)
        try:
            destination = self._touch_file(action, action_id, destination)
        except fileops.ContentChanged as exc:
            self._settle(action_id, action, action.destination, "skipped", str(exc))
            return
        except OSError as exc:
            message = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            self._settle(action_id, action, action.destination, "failed", message)
            log.warning("%s %s failed: %s", action.kind, action.source, message)
            return
        self.bytes_done += action.size
        self.done.add(action.source)
        self._settle(action_id, action, destination, "done", None)

    def _settle(self, action_id, action, destination, outcome, message) -> None:
        self.outcomes.append(record_outcome(self.db, action_id, action, destination, outcome, message, self.roots,
                                            self.reindex))

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
