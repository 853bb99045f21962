"""The ``imgindex`` command: parse options, call one Index method, render. No logic of its own."""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
import shlex
import signal
import sys
import threading
from datetime import datetime

import click

from imgindex import results
from imgindex.actions import ActionPlan, ActionReport
from imgindex.compare import SearchReport
from imgindex.errors import ImgIndexError
from imgindex.index import DEFAULT_DB, Index
from imgindex.indexer import PX_SIZE_RANGE, ScanReport
from imgindex.progress import ProgressLine, human_bytes

SHOWN_ERRORS = 10
PLAN_PREVIEW = 10


def _user_errors(func):
    """Library errors become one-line messages (exit 1); Ctrl-C and SIGTERM exit 130 cleanly."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return func(*args, **kwargs)
        except ImgIndexError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            click.echo(
                "\nInterrupted. Everything read so far is kept; run the same command again to continue.",
                err=True,
            )
            sys.exit(130)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="imgindex")
def cli():
    """Find duplicate and similar images in large photo folders; the index lives in SQLite."""


def _options(*decorators):
    """Apply a shared list of click options (so scan/find and search/find stay in step)."""

    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


db_option = click.option(
    "--db",
    "db_path",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file holding the index (created if missing).",
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
processes_option = click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes  [default: number of CPUs].",
)
scan_options = _options(
    click.option("--recursive/--no-recursive", default=True, show_default=True, help="Also scan subfolders."),
    click.option(
        "--limit-extensions/--no-limit-extensions",
        default=True,
        show_default=True,
        help="Only read files whose extension is an image format Pillow opens; others are counted as skipped.",
    ),
    click.option(
        "--px-size",
        type=click.IntRange(*PX_SIZE_RANGE),
        default=50,
        show_default=True,
        help="Side of the square RGB tensor each image is reduced to; fixed for the life of an index.",
    ),
)
search_options = _options(
    click.option(
        "--similarity",
        default="duplicates",
        show_default=True,
        help="'duplicates' (MSE 0: identical tensors), 'similar' (MSE 6, calibrated on real photos) or an MSE threshold >= 0.",
    ),
    click.option("--rotate/--no-rotate", default=True, show_default=True, help="Also match copies turned 90/180/270 degrees."),
    click.option("--same-dim/--no-same-dim", default=True, show_default=True,
                 help="Only compare images of the same pixel dimensions (either orientation)."),
    click.option("--mirror", is_flag=True, help="Also match mirrored (flipped) copies, in every rotation."),
    click.option("--in-folder", is_flag=True, help="Search each root folder on its own; results nested by root."),
    click.option("--chunksize", type=click.IntRange(min=1), default=None,
                 help="Images per chunk in the chunked search (less = less memory)  [default: max(1e6/N, 1000)]."),
    click.option("--full", is_flag=True, help="Compare everything again instead of only what is new since the last search."),
    click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
                 help="How to write the groups found."),
    click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
                 help="Write the result to this file instead of stdout."),
)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@db_option
@scan_options
@processes_option
@quiet_option
@_user_errors
def scan(paths, db_path, recursive, limit_extensions, px_size, processes, quiet):
    """Index the images under PATHS into the database; only new, changed and removed files cost time.

    \b
    Examples:
      imgindex scan ~/Pictures /mnt/backup --db photos.db
      imgindex scan ~/Pictures --db photos.db --no-recursive
    """
    with Index(db_path) as index:
        report = _scan(index, paths, recursive, limit_extensions, px_size, processes, quiet)
        if not quiet:
            _print_scan_summary(report, index)


@cli.command()
@db_option
@search_options
@processes_option
@quiet_option
@_user_errors
def search(db_path, similarity, rotate, same_dim, mirror, in_folder, chunksize, full, fmt, output, processes, quiet):
    """Find matching images among those indexed in the database, and write the groups.

    After a scan, only images new since the last search with the same settings are compared.
    --in-folder searches each root of the latest scan on its own.

    \b
    Examples:
      imgindex search --db photos.db
      imgindex search --db photos.db --similarity similar --format json -o matches.json
    """
    with Index(db_path) as index:
        report = _search(index, (), similarity, rotate, same_dim, mirror, in_folder, chunksize, full, processes, quiet)
        _write_result(index, report, fmt, output, quiet)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@db_option
@scan_options
@search_options
@processes_option
@quiet_option
@_user_errors
def find(paths, db_path, recursive, limit_extensions, px_size, similarity, rotate, same_dim, mirror, in_folder,
         chunksize, full, fmt, output, processes, quiet):
    """Scan PATHS and search them in one go: difPy's command line, with a memory.

    \b
    Examples:
      imgindex find ~/Pictures
      imgindex find ~/Pictures /mnt/backup --in-folder --similarity similar --format json -o out.json
    """
    with Index(db_path) as index:
        scan_report = _scan(index, paths, recursive, limit_extensions, px_size, processes, quiet)
        if not quiet:
            _print_scan_summary(scan_report, index, file=sys.stderr)
        report = _search(index, scan_report.roots, similarity, rotate, same_dim, mirror, in_folder, chunksize, full,
                         processes, quiet)
        _write_result(index, report, fmt, output, quiet)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@db_option
@click.option("--similarity", default="duplicates", show_default=True,
              help="'duplicates', 'similar' or an MSE threshold >= 0, as for search.")
@click.option("--rotate/--no-rotate", default=True, show_default=True, help="Also match turned copies.")
@click.option("--same-dim/--no-same-dim", default=True, show_default=True,
              help="Only compare images of the same pixel dimensions.")
@click.option("--mirror", is_flag=True, help="Also match mirrored copies.")
@click.option("--limit-extensions/--no-limit-extensions", default=True, show_default=True,
              help="Only read image file extensions.")
@click.option("--px-size", type=click.IntRange(*PX_SIZE_RANGE), default=None,
              help="Tensor side for a new index  [default: the index's, or 50].")
@processes_option
@click.option("--settle", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds a new file's size and mtime must stay unchanged before it is read.")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None,
              help="Append the log here instead of stderr.")
@_user_errors
def watch(paths, db_path, similarity, rotate, same_dim, mirror, limit_extensions, px_size, processes, settle,
          log_file):
    """Keep the index and matches of PATHS current: index and compare new files as they land.

    Catches up with what changed while it was not running, then follows file events. Logs one
    line per batch. Stops cleanly on Ctrl-C or SIGTERM after the batch in hand.

    \b
    Example:
      imgindex watch ~/Pictures --db photos.db --similarity similar
    """
    stream = open(log_file, "a", encoding="utf-8", buffering=1) if log_file else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("imgindex").addHandler(handler)
    logging.getLogger("imgindex").setLevel(logging.INFO)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, _stop_handler(stop)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Index(db_path) as index:
            _log_line(stream, f"watching {', '.join(os.path.abspath(p) for p in paths)} into {index.path} (pid {os.getpid()})")
            index.watch(paths, stop=stop, settle=settle, similarity=similarity, rotate=rotate, mirror=mirror,
                        same_dim=same_dim, limit_extensions=limit_extensions, px_size=px_size, processes=processes,
                        on_batch=lambda r: _log_line(stream, _batch_line(r)))
            _log_line(stream, "stopped cleanly")
    finally:
        for sig, handler_ in previous.items():
            signal.signal(sig, handler_)
        logging.getLogger("imgindex").removeHandler(handler)


def _stop_handler(stop: threading.Event):
    def handle(signum, frame):
        if stop.is_set():  # asked twice: stop now (the index stays consistent)
            raise KeyboardInterrupt
        stop.set()

    return handle


def _batch_line(r) -> str:
    return (f"{r.reason}: +{r.added} new, {r.updated} changed, {r.moved} moved, {r.removed} removed, "
            f"{r.failed} failed; {r.new_pairs} new pairs ({r.pairs} pairs in {r.groups} groups) in {r.duration:.2f} s")


def _log_line(stream, text: str) -> None:
    stream.write(f"{datetime.now().isoformat(sep=' ', timespec='seconds')} {text}\n")
    stream.flush()


@cli.command()
@db_option
@_user_errors
def status(db_path):
    """Show what the index holds: images, errors, last scan and search, and the watcher's state.

    \b
    Example:
      imgindex status --db photos.db
    """
    with Index(db_path) as index:
        st = index.status()
    click.echo(f"Index {index.path}: {st.images:,} images (tensors {st.px_size or '-'} px), "
               f"{st.errors:,} files could not be read (table scan_errors)")
    if st.last_scan:
        s = st.last_scan
        click.echo(f"Last scan: #{s['id']} {s['status']}, started {s['started_at']}: +{s['added']} new, "
                   f"{s['updated']} changed, {s['moved']} moved, {s['removed']} removed, {s['failed']} failed")
    else:
        click.echo("Last scan: none yet (imgindex scan DIR)")
    if st.last_search:
        s = st.last_search
        click.echo(f"Matches: search #{s['id']} ({s['similarity']}, MSE <= {s['threshold']:g}) at {s['finished_at']}: "
                   f"{s['pairs']:,} pairs in {s['groups']:,} groups among {s['images']:,} images")
    else:
        click.echo("Matches: no search yet (imgindex search)")
    a = st.last_action
    if a:
        what = a["command"] + (f" {a['destination']}" if a["destination"] else "") + (
            " --permanent" if a["permanent"] else "")
        click.echo(f"Last action: run {a['id']} ({what}) {a['status']}, started {a['started_at']}: {a['done']} done, "
                   f"{a['skipped']} left alone, {a['failed']} failed (table actions; imgindex undo puts it back)")
    w = st.watcher
    if w is None:
        click.echo("Watcher: not running")
    elif w.running:
        click.echo(f"Watcher: running, pid {w.pid} on {w.host} since {w.started_at}; {w.batches} batches, "
                   f"{w.pending} files settling, last heartbeat {w.seconds_since_heartbeat:.0f} s ago")
    else:
        click.echo(f"Watcher: not running (pid {w.pid} stopped without cleaning up at {w.heartbeat_at}; "
                   "the next watch repairs the index)")


existing_db_option = click.option(
    "--db",
    "db_path",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False, exists=True),
    help="SQLite file holding the index and its latest search.",
)
yes_option = click.option("-y", "--yes", is_flag=True, help="Act without asking (needed when not on a terminal).")
dry_run_option = click.option("--dry-run", is_flag=True, help="Print the plan, file by file, and change nothing.")
action_quiet_option = click.option("-q", "--quiet", is_flag=True,
                                   help="No progress bar and no plan preview (files left alone or failed are still listed).")


@cli.command("move-to")
@click.argument("destination", type=click.Path(file_okay=False))
@existing_db_option
@yes_option
@dry_run_option
@action_quiet_option
@_user_errors
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
@existing_db_option
@click.option("--trash/--permanent", default=True, show_default=True,
              help="Send files to the system trash (undoable), or delete them for good.")
@yes_option
@dry_run_option
@action_quiet_option
@_user_errors
def delete(db_path, trash, yes, dry_run, quiet):
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
@existing_db_option
@click.option("--action-id", type=int, default=None, help="Undo only this action (one file; see the actions table).")
@click.option("--run-id", type=int, default=None, help="Undo this run (one move-to or delete command) [default: the latest].")
@yes_option
@dry_run_option
@action_quiet_option
@_user_errors
def undo(db_path, action_id, run_id, yes, dry_run, quiet):
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
@_user_errors
def report(db_path, output, limit_groups, thumb_size, processes, quiet):
    """Write one self-contained HTML page of the latest search's groups, to review before acting.

    Thumbnails are embedded (no server, no network). Groups come most space reclaimable first,
    with resolution, size, format, folder and MSE to the keeper; a histogram of every image's
    nearest-neighbour MSE shows where duplicates end. It never moves or deletes anything.

    \b
    Example:
      imgindex report --db photos.db -o report.html
    """
    with Index(db_path) as index:
        bar = ProgressLine() if not quiet and sys.stderr.isatty() else None
        try:
            summary = index.report(output, limit_groups=limit_groups, thumb_size=thumb_size, processes=processes,
                                   progress=bar)
        finally:
            if bar is not None:
                bar.clear()
    if quiet:
        return
    shown = "" if summary.groups_shown == summary.groups else f" (showing {summary.groups_shown:,})"
    click.echo(f"Report: {summary.output} ({human_bytes(summary.size_bytes)}): {summary.groups:,} groups{shown}, "
               f"{summary.images:,} images, {human_bytes(summary.bytes_reclaimable)} reclaimable; "
               f"{summary.near_misses:,} near misses up to MSE {summary.histogram_cap:g}; "
               f"{summary.missing:,} originals could not be shown. Nothing was changed.")
    click.echo("Open it in a browser. To act on the lower-quality images, look at the plan first:")
    for command in summary.next_commands:
        click.echo(f"  {command}")


def _act(index: Index, plan: ActionPlan, what: str, yes: bool, dry_run: bool, quiet: bool) -> None:
    """Show the plan, ask, apply, report; exit 1 if any file failed."""
    question = what.format(n=f"{len(plan.actions):,}", size=human_bytes(plan.bytes))
    if not plan.actions:
        _print_plan(plan, "Nothing to do: no file to act on", full=True)
        return
    if dry_run or not quiet:
        _print_plan(plan, question, full=dry_run)
    if dry_run:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException("Not on a terminal, so nobody can confirm: add --yes to act "
                                       "(or --dry-run to see the plan).")
        click.confirm(question + "?", abort=True)
    bar = ProgressLine() if not quiet and sys.stderr.isatty() else None
    try:
        report = index.apply(plan, progress=bar)
    finally:
        if bar is not None:
            bar.clear()
    _print_action_report(index, report)
    if report.failed:
        sys.exit(1)


def _print_plan(plan: ActionPlan, question: str, *, full: bool) -> None:
    shown = plan.actions if full else plan.actions[:PLAN_PREVIEW]
    click.echo(("Plan (dry run, nothing changes): " if full and plan.actions else "") + question + ".")
    for a in shown:
        arrow = f" -> {_shown(a.destination)}" if a.destination else ""
        click.echo(f"  {a.kind:<9} {_shown(a.source)}{arrow}")
    if len(plan.actions) > len(shown):
        click.echo(f"  ... and {len(plan.actions) - len(shown):,} more (--dry-run lists them all)")
    if plan.skipped:
        click.echo(f"Left alone ({len(plan.skipped):,}):")
        for s in plan.skipped:
            click.echo(f"  {_shown(s.path)}: {s.reason}")


def _print_action_report(index: Index, report: ActionReport) -> None:
    verbs = {"move-to": "Moved", "delete": "Deleted", "undo": "Put back"}
    click.echo(f"{verbs[report.command]} {report.done:,} files; {report.skipped:,} left alone, "
               f"{report.failed:,} failed ({report.duration:.1f} s). Journaled as run {report.run_id} "
               "in the actions table.")
    for o in report.outcomes:
        if o.outcome != "done":
            click.echo(f"  {o.outcome}: {_shown(o.source)}: {o.message}", err=True)
    for o in report.recovered:
        click.echo(f"  an interrupted earlier run: {_shown(o.source)} {o.message}", err=True)
    if report.reindexed:
        click.echo(f"{report.reindexed:,} files put back were indexed again.")
    if report.command != "undo" and report.done:
        click.echo(f"Undo with: imgindex undo --db {shlex.quote(str(index.path))}")


def _shown(path: str) -> str:
    """A path as one printable line (newlines and undecodable bytes escaped)."""
    return path if path.isprintable() else json.dumps(path)


def _scan(index, paths, recursive, limit_extensions, px_size, processes, quiet) -> ScanReport:
    bar = ProgressLine() if not quiet and sys.stderr.isatty() else None
    try:
        return index.scan(paths, recursive=recursive, limit_extensions=limit_extensions, px_size=px_size,
                          processes=processes, progress=bar)
    finally:
        if bar is not None:
            bar.clear()


def _search(index, roots, similarity, rotate, same_dim, mirror, in_folder, chunksize, full, processes, quiet):
    bar = ProgressLine() if not quiet and sys.stderr.isatty() else None
    try:
        return index.search(similarity=similarity, rotate=rotate, mirror=mirror, same_dim=same_dim,
                            in_folder=in_folder, roots=roots, processes=processes, chunksize=chunksize, full=full,
                            progress=bar)
    finally:
        if bar is not None:
            bar.clear()


def _write_result(index: Index, report: SearchReport, fmt: str, output, quiet: bool) -> None:
    if not quiet:
        how = f"incremental: {report.new_images:,} new" if report.incremental else f"{report.algorithm}"
        click.echo(
            f"Search {report.search_id}: {report.pairs:,} matching pairs in {report.groups:,} groups among "
            f"{report.images:,} images (MSE <= {report.threshold:g}; {how}) in {report.duration:.1f} s",
            err=True,
        )
    if fmt == "json":
        json.dump(index.result(report.search_id), output, indent=2, ensure_ascii=False)
        output.write("\n")
    elif fmt == "csv":
        writer = csv.DictWriter(output, fieldnames=results.GROUP_COLUMNS)
        writer.writeheader()
        writer.writerows(results.group_rows(index.db, report.search_id))
    else:
        _write_table(results.group_rows(index.db, report.search_id), output)


def _write_table(rows: list[dict], output) -> None:
    for row in rows:
        size = f"{row['width']}x{row['height']}, {row['size']:,} B"
        if row["is_keeper"]:
            output.write(f"\nGroup {row['group_id']}\n  keep  {row['path']}  ({size})\n")
        else:
            turn = f", turned {row['rotation']}°" if row["rotation"] else ""
            flip = ", mirrored" if row["mirrored"] else ""
            output.write(f"  dup   {row['path']}  ({size}; MSE {row['mse_to_keeper']:.3g}{turn}{flip})\n")


def _print_scan_summary(report: ScanReport, index: Index, file=None) -> None:
    echo = functools.partial(click.echo, file=file)
    verb = "Scanned" if report.status == "completed" else f"Scan {report.status}:"
    echo(f"{verb} {', '.join(report.roots)} into {index.path} in {report.duration:.1f} s")
    rows = [
        ("files seen", report.seen, ""),
        ("new", report.added, f"{report.reused:,} were byte copies: stored tensor reused" if report.reused else ""),
        ("changed", report.updated, "re-read"),
        ("moved/renamed", report.moved, "recognised by content, not decoded again"),
        ("unchanged", report.unchanged, "not opened"),
        ("removed", report.removed, "no longer on disk"),
        ("skipped", report.skipped, "not image files, symlinks, special files"),
        ("failed", report.failed, "see the scan_errors table" if report.failed else ""),
        ("decoded", report.decoded, ""),
    ]
    for label, value, note in rows:
        echo(f"  {label:<15}{value:>10,}" + (f"   {note}" if note and value else ""))
    for folder in report.unlisted_folders:
        echo(f"  ! {folder.path}: {folder.message}")
    if report.errors:
        echo(f"Files that could not be read (first {min(SHOWN_ERRORS, len(report.errors))} of {len(report.errors):,}):")
        for err in report.errors[:SHOWN_ERRORS]:
            echo(f"  {err.path}: {err.message}")
    echo(f"The index holds {index.count():,} images.")


def main():  # pragma: no cover - console script entry
    cli()


if __name__ == "__main__":  # pragma: no cover
    cli()
