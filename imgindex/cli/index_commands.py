"""Commands that build and read the index: scan, search, find, watch, status."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import click

from imgindex.api import Index
from imgindex.cli import render
from imgindex.cli.app import cli, progress_bar, user_errors
from imgindex.cluster.connect import open_cluster
from imgindex.cli.options import (
    db_option,
    existing_db_option,
    processes_option,
    quiet_option,
    scheduler_option,
    reference_option,
    scan_options,
    search_options,
    watch_options,
)
from imgindex.types import ScanReport, SearchReport

PATHS = click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))


@cli.command()
@PATHS
@db_option
@scan_options
@reference_option
@click.option("--refresh-signals", is_flag=True,
              help="Also decode again the images indexed before borders were looked for (letterbox bars, mats),"
                   " so the 'trimmed' signal can compare them; resumable, changes nothing else.")
@processes_option
@scheduler_option
@quiet_option
@user_errors
def scan(paths, db_path, recursive, limit_extensions, px_size, reference, refresh_signals, processes, scheduler,
         quiet):
    """Index the images under PATHS into the database; only new, changed and removed files cost time.

    \b
    Examples:
      imgindex scan ~/Pictures /mnt/backup --db photos.db
      imgindex scan ~/Pictures --db photos.db --no-recursive
      imgindex scan ~/Incoming --reference ~/Archive --db photos.db
      imgindex scan /mnt/photos --db photos.db --scheduler tcp://10.0.0.5:8786
      imgindex scan ~/Pictures --db photos.db --refresh-signals
    """
    with Index(db_path) as index:
        report = _scan(index, paths, recursive, limit_extensions, px_size, processes, quiet, reference, scheduler)
        if not quiet:
            render.scan_summary(report, index.path, index.count())
        if refresh_signals:
            with progress_bar(quiet) as bar:
                refreshed = index.refresh_signals(paths, processes=processes, progress=bar)
            if not quiet:
                click.echo(render.refresh_line(refreshed), err=True)


@cli.command()
@db_option
@search_options
@processes_option
@scheduler_option
@quiet_option
@user_errors
def search(db_path, in_folder, chunksize, full, fmt, output, processes, scheduler, quiet, **settings):
    """Find matching images among those indexed in the database, and write the groups.

    Options not given are the index's search profile (set by the first search; see imgindex
    config). After a scan, only images new since the last search with the same settings are
    compared. --in-folder searches each root of the latest scan on its own.

    \b
    Examples:
      imgindex search --db photos.db
      imgindex search --db photos.db --similarity similar --format json -o matches.json
      imgindex search --db photos.db --keep oldest,resolution --save-profile
    """
    with Index(db_path) as index:
        report = _search(index, (), settings, in_folder, chunksize, full, processes, quiet, scheduler)
        _write_result(index, report, fmt, output, quiet)


@cli.command()
@PATHS
@db_option
@scan_options
@search_options
@processes_option
@scheduler_option
@quiet_option
@user_errors
def find(paths, db_path, recursive, limit_extensions, px_size, in_folder, chunksize, full, fmt, output, processes,
         scheduler, quiet, **settings):
    """Scan PATHS and search them in one go: difPy's command line, with a memory.

    \b
    Examples:
      imgindex find ~/Pictures
      imgindex find ~/Pictures /mnt/backup --in-folder --similarity similar --format json -o out.json
      imgindex find ~/Incoming --reference ~/Archive
    """
    reference = settings.pop("reference")
    with Index(db_path) as index, open_cluster(scheduler, workers=processes) as cluster:  # one cluster for both
        scan_report = _scan(index, paths, recursive, limit_extensions, px_size, processes, quiet, reference, cluster)
        if not quiet:
            render.scan_summary(scan_report, index.path, index.count(), file=sys.stderr)
        report = _search(index, scan_report.roots, settings, in_folder, chunksize, full, processes, quiet, cluster)
        _write_result(index, report, fmt, output, quiet)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@db_option
@watch_options
@processes_option
@click.option("--settle", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds a new file's size and mtime must stay unchanged before it is read.")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None,
              help="Append the log here instead of stderr.")
@user_errors
def watch(paths, db_path, limit_extensions, px_size, processes, settle, log_file, **settings):
    """Keep the index and matches of PATHS current: index and compare new files as they land.

    Catches up with what changed while it was not running, then follows file events. Logs one
    line per batch. Stops cleanly on Ctrl-C or SIGTERM after the batch in hand.

    \b
    Search options not given are the index's search profile, read again for every batch.

    \b
    Examples:
      imgindex watch ~/Pictures --db photos.db --similarity similar
      imgindex watch ~/Incoming --reference ~/Archive --db photos.db
    """
    settings["prefer_folders"] = settings["prefer_folders"] or None  # not given: the profile's
    stream = open(log_file, "a", encoding="utf-8", buffering=1) if log_file else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("imgindex").addHandler(handler)
    logging.getLogger("imgindex").setLevel(logging.INFO)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, _stop_handler(stop)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Index(db_path) as index:
            roots = ", ".join(os.path.abspath(p) for p in paths)
            render.log_line(stream, f"watching {roots} into {index.path} (pid {os.getpid()})")
            index.watch(paths, stop=stop, settle=settle, limit_extensions=limit_extensions, px_size=px_size,
                        processes=processes, on_batch=lambda r: render.log_line(stream, render.batch_line(r)),
                        **settings)
            render.log_line(stream, "stopped cleanly")
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


@cli.command()
@db_option
@user_errors
def status(db_path):
    """Show what the index holds: images, errors, last scan and search, and the watcher's state.

    \b
    Example:
      imgindex status --db photos.db
    """
    with Index(db_path) as index:
        lines = render.status_lines(index.status(), index.path)
    for line in lines:
        click.echo(line)


def _scan(index: Index, paths, recursive, limit_extensions, px_size, processes, quiet, reference=(),
          scheduler=None) -> ScanReport:
    with progress_bar(quiet) as bar:
        return index.scan(paths, recursive=recursive, limit_extensions=limit_extensions, px_size=px_size,
                          processes=processes, reference=reference, progress=bar, scheduler=scheduler)


def _search(index: Index, roots, settings: dict, in_folder, chunksize, full, processes, quiet,
            scheduler=None) -> SearchReport:
    """``settings``: the match options (similarity, rotate, mirror, same_dim, keep, prefer_folders, reference,
    save_profile); None where not given."""
    settings = {**settings, "prefer_folders": settings["prefer_folders"] or None}
    with progress_bar(quiet) as bar:
        return index.search(**settings, in_folder=in_folder, roots=roots, processes=processes, chunksize=chunksize,
                            full=full, progress=bar, scheduler=scheduler)


def _write_result(index: Index, report: SearchReport, fmt: str, output, quiet: bool) -> None:
    if not quiet:
        render.search_summary(report, index.profile)
    if fmt == "json":
        render.write_json(index.result(report.search_id), output)
    elif fmt == "csv":
        render.write_csv(index.group_rows(report.search_id), output)
    else:
        render.write_table(index.group_rows(report.search_id), output)


@cli.command()
@existing_db_option
@click.option("--repair", is_flag=True,
              help="Settle interrupted actions, drop orphan rows, queue images without a good tensor for the next "
                   "scan, re-make bad groups. Never touches a photo.")
@user_errors
def check(db_path, repair):
    """Check the index's invariants (integrity, tensors, journal, groups); exit 1 if any does not hold.

    \b
    Examples:
      imgindex check --db photos.db
      imgindex check --db photos.db --repair
    """
    with Index(db_path) as index:
        report = index.check(repair=repair)
    for line in render.check_lines(report):
        click.echo(line)
    if not report.ok:
        sys.exit(1)
