"""The actions journal: a run's row, a row per file written before the file is touched, and
settling what a dead run left 'planned' from what is on disk.

Each file's action is committed as 'planned' (``synchronous=FULL``) before it is touched and
marked 'done' together with the index update after, so a run killed anywhere is finished or
reverted from the journal and the disk (``recover``), and ``undo`` can put files back.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

from imgindex.actions import fileops
from imgindex.db import pids, runs
from imgindex.db.queries import indexed_roots
from imgindex.db.runs import now
from imgindex.errors import ActionError
from imgindex.scan.discover import under
from imgindex.types import ActionOutcome, ActionPlan, PlannedAction

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)


def start_run(db: Database, plan: ActionPlan) -> int:
    with db.atomic():
        busy = db.execute("SELECT id, pid, process_start, host FROM action_runs WHERE status = 'running'").fetchall()
        for run_id, pid, started, host in busy:
            if host != socket.gethostname() or pids.alive(pid, started):
                raise ActionError(f"Another imgindex action (run {run_id}, pid {pid} on {host}) is working on this "
                                  "index: wait for it to finish.")
        return runs.start_run(db, "action_runs", {
            "command": plan.command, "search_id": plan.search_id, "destination": plan.destination,
            "permanent": int(plan.permanent), "pid": os.getpid(), "process_start": pids.process_start(os.getpid()),
            "host": socket.gethostname(), "started_at": now(), "status": "running", "planned": len(plan.actions)})


def finish_run(db: Database, run_id: int, status: str, outcomes: list[ActionOutcome], search_id: int | None) -> None:
    """Record how a run ended; groups left with only their keeper stop being match groups."""
    counts = {k: sum(o.outcome == k for o in outcomes) for k in ("done", "skipped", "failed")}
    with db.atomic():
        runs.update_run(db, "action_runs", run_id, {"status": status, "finished_at": now(), **counts})
        if search_id is not None:
            drop_lone_keepers(db, search_id)


def journal_planned(db: Database, run_id: int, action: PlannedAction, destination: str | None) -> int:
    """The row of a file about to be touched, committed before it is."""
    return db.execute(
        "INSERT INTO actions (run_id, kind, image_id, source, destination, content_hash, size, keeper, undoes,"
        " planned_at, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned')",
        [run_id, action.kind, action.image_id, action.source, destination, action.content_hash,
         action.size, action.keeper, action.undoes, now()],
    ).lastrowid


def record_outcome(db: Database, action_id: int, action: PlannedAction, destination: str | None, outcome: str,
                   message: str | None, roots: list[str], reindex: set[str]) -> ActionOutcome:
    """Settle a journal row; when the action was done, the index follows the file in the same transaction."""
    with db.atomic():
        db.execute("UPDATE actions SET outcome = ?, message = ?, destination = ?, done_at = ? WHERE id = ?",
                   [outcome, message, destination, now(), action_id])
        if outcome == "done":
            follow_in_index(db, roots, action, destination, reindex)
            if action.undoes is not None:
                db.execute("UPDATE actions SET outcome = 'undone' WHERE id = ?", [action.undoes])
    return ActionOutcome(action_id, action.kind, action.source, destination, outcome, message)


def follow_in_index(db: Database, roots: list[str], action: PlannedAction, destination: str | None,
                    reindex: set[str]) -> None:
    """Give a moved image its new path (or drop it when it left the indexed roots); drop deleted ones."""
    if action.image_id is None:
        return  # a sidecar: never in the index
    old_path = action.source
    new_path = destination if action.kind in ("move", "move-back", "restore") else None
    if new_path is not None and any(under(new_path, r) for r in roots):
        row = db.execute("SELECT id FROM images WHERE path = ?", [old_path]).fetchone()
        if row is None:
            reindex.add(os.path.dirname(new_path))  # it left the index when it was moved or trashed
            return
        st = os.lstat(new_path)
        db.execute("DELETE FROM images WHERE path = ? AND id != ?", [new_path, row[0]])  # a stale row
        db.execute(
            "UPDATE images SET path = ?, folder = ?, size = ?, mtime_ns = ?, moved_at = ? WHERE id = ?",
            [new_path, os.path.dirname(new_path), st.st_size, st.st_mtime_ns, now(), row[0]],
        )
    else:
        db.execute("DELETE FROM images WHERE path = ?", [old_path])


def drop_lone_keepers(db: Database, search_id: int) -> None:
    """A group whose other members all left the index is no longer a match group."""
    db.execute(
        "DELETE FROM group_members WHERE search_id = ? AND group_id IN (SELECT group_id FROM group_members"
        " WHERE search_id = ? GROUP BY group_id HAVING count(*) < 2)",
        [search_id, search_id],
    )


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
        db.execute("UPDATE action_runs SET status = 'interrupted', finished_at = ? WHERE id = ?", [now(), run_id])
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
    return record_outcome(db, action_id, action, destination, outcome, message, indexed_roots(db), set())
