"""Commands that look at and act on the latest search: report, move-to, delete, undo."""

from __future__ import annotations

import sys

import click

from imgindex.api import Index
from imgindex.cli import render
from imgindex.cli.app import cli, progress_bar, user_errors
from imgindex.cli.options import action_options, existing_db_option, processes_option, quiet_option
from imgindex.humanize import human_bytes
from imgindex.types import ActionPlan


@cli.command("move-to")
@click.argument("destination", type=click.Path(file_okay=False))
@action_options
@user_errors
def move_to(destination, db_path, yes, dry_run, quiet):
    """Move the lower-quality copies of the latest search under DESTINATION; keepers stay.

    Folders are kept relative to their scanned root; an existing file is never overwritten
    (the newcomer gets a ' (1)' suffix). Each file is re-checked against the index first, and
    every move is journaled in the actions table: `imgindex undo` puts them back.

    \b
    Examples:
      imgindex move-to ~/duplicates --db photos.db --dry-run
      imgindex move-to ~/duplicates --db photos.db --yes
    """
    with Index(db_path) as index:
        plan = index.plan_move_to(destination)
        _act(index, plan, f"Move {{n}} lower-quality files ({{size}}) under {plan.destination}", yes, dry_run, quiet)


@cli.command()
@click.option("--trash/--permanent", default=True, show_default=True,
              help="Send files to the system trash (undoable), or delete them for good.")
@action_options
@user_errors
def delete(trash, db_path, yes, dry_run, quiet):
    """Delete the lower-quality copies of the latest search (to the system trash by default); keepers stay.

    Each file is re-checked against the index first, a group whose keeper is missing or changed
    is left alone, and every deletion is journaled in the actions table.

    \b
    Examples:
      imgindex delete --db photos.db --dry-run
      imgindex delete --db photos.db --yes
    """
    with Index(db_path) as index:
        plan = index.plan_delete(permanent=not trash)
        what = "Delete {n} lower-quality files ({size}) " + ("PERMANENTLY" if not trash else "to the system trash")
        _act(index, plan, what, yes, dry_run, quiet)


@cli.command()
@click.option("--action-id", type=int, default=None, help="Undo only this action (one file; see the actions table).")
@click.option("--run-id", type=int, default=None,
              help="Undo this run (one move-to or delete command) [default: the latest].")
@action_options
@user_errors
def undo(action_id, run_id, db_path, yes, dry_run, quiet):
    """Put back the files the latest move-to or delete moved or trashed (or one run or action).

    Files return to their original paths, never over a file that is there now; trashed files
    come back from the freedesktop trash (Linux); permanent deletions cannot be undone.

    \b
    Examples:
      imgindex undo --db photos.db
      imgindex undo --db photos.db --action-id 42 --yes
    """
    with Index(db_path) as index:
        plan = index.plan_undo(run_id=run_id, action_id=action_id)
        _act(index, plan, "Put back {n} files ({size})", yes, dry_run, quiet)


@cli.command()
@existing_db_option
@click.option("-o", "--output", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (an earlier report there is replaced; any other file is refused).")
@click.option("--limit-groups", type=click.IntRange(min=1), default=None,
              help="Show only the N groups that free the most space  [default: all].")
@click.option("--thumb-size", type=click.IntRange(16, 2048), default=256, show_default=True,
              help="Longer side of each embedded thumbnail, in pixels.")
@processes_option
@quiet_option
@user_errors
def report(db_path, output, limit_groups, thumb_size, processes, quiet):
    """Write one self-contained HTML page of the latest search's groups, to review before acting.

    Thumbnails are embedded (no server, no network). Groups come most space reclaimable first,
    with resolution, size, format, folder and MSE to the keeper; a histogram of every image's
    nearest-neighbour MSE shows where duplicates end. It never moves or deletes anything.

    \b
    Example:
      imgindex report --db photos.db -o report.html
    """
    with Index(db_path) as index, progress_bar(quiet) as bar:
        summary = index.report(output, limit_groups=limit_groups, thumb_size=thumb_size, processes=processes,
                               progress=bar)
    if not quiet:
        render.report_summary(summary)


def _act(index: Index, plan: ActionPlan, what: str, yes: bool, dry_run: bool, quiet: bool) -> None:
    """Show the plan, ask, apply, report; exit 1 if any file failed."""
    question = what.format(n=f"{len(plan.actions):,}", size=human_bytes(plan.bytes))
    if not plan.actions:
        render.plan(plan, "Nothing to do: no file to act on", full=True)
        return
    if dry_run or not quiet:
        render.plan(plan, question, full=dry_run)
    if dry_run:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException("Not on a terminal, so nobody can confirm: add --yes to act "
                                       "(or --dry-run to see the plan).")
        click.confirm(question + "?", abort=True)
    with progress_bar(quiet) as bar:
        report = index.apply(plan, progress=bar)
    render.action_report(report, index.path)
    if report.failed:
        sys.exit(1)
