"""The ``imgindex`` command: parse options, call one Index method, render. No logic of its own."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time

import click

from imgindex.errors import ImgIndexError
from imgindex.index import DEFAULT_DB, Index
from imgindex.indexer import PX_SIZE_RANGE, ScanProgress, ScanReport

SHOWN_ERRORS = 10


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


db_option = click.option(
    "--db",
    "db_path",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file holding the index (created if missing).",
)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@db_option
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Also scan subfolders.")
@click.option(
    "--limit-extensions/--no-limit-extensions",
    default=True,
    show_default=True,
    help="Only read files whose extension is an image format Pillow opens; others are counted as skipped.",
)
@click.option(
    "--px-size",
    type=click.IntRange(*PX_SIZE_RANGE),
    default=50,
    show_default=True,
    help="Side of the square RGB tensor each image is reduced to; fixed for the life of an index.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes decoding images  [default: number of CPUs].",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@_user_errors
def scan(paths, db_path, recursive, limit_extensions, px_size, processes, quiet):
    """Index the images under PATHS into the database; only new, changed and removed files cost time.

    \b
    Examples:
      imgindex scan ~/Pictures /mnt/backup --db photos.db
      imgindex scan ~/Pictures --db photos.db --no-recursive
    """
    bar = _ProgressLine() if not quiet and sys.stderr.isatty() else None
    with Index(db_path) as index:
        try:
            report = index.scan(
                paths,
                recursive=recursive,
                limit_extensions=limit_extensions,
                px_size=px_size,
                processes=processes,
                progress=bar,
            )
        finally:
            if bar is not None:
                bar.clear()
        if not quiet:
            _print_summary(report, index)


class _ProgressLine:
    """One line on stderr, redrawn at most ten times a second."""

    def __init__(self):
        self.last = 0.0
        self.width = 0

    def __call__(self, p: ScanProgress) -> None:
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        done = p.seen
        rate = (p.decoded + p.failed) / p.elapsed if p.elapsed > 0 else 0.0
        parts = [f"{done:,}" + (f"/{p.total:,}" if p.total else "") + " files"]
        parts.append(f"{p.decoded:,} decoded")
        parts.append(f"{p.unchanged:,} unchanged")
        parts.append(f"{p.skipped:,} skipped")
        parts.append(f"{p.failed:,} failed")
        parts.append(f"{rate:,.0f}/s")
        if p.total and done and p.total >= done:
            eta = (p.total - done) * p.elapsed / done
            parts.append(f"ETA {_clock(eta)}")
        line = "Scanning: " + " | ".join(parts)
        columns = _columns()
        line = line[: columns - 1]
        click.echo("\r" + line.ljust(self.width), nl=False, err=True)
        self.width = len(line)

    def clear(self) -> None:
        if self.width:
            click.echo("\r" + " " * self.width + "\r", nl=False, err=True)


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return 100


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _print_summary(report: ScanReport, index: Index) -> None:
    echo = functools.partial(click.echo, err=False)
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
