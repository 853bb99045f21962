"""The ``imgindex`` command group, and what every command shares: errors as messages, progress bars."""

from __future__ import annotations

import functools
import signal
import sqlite3
import sys
from collections.abc import Callable
from contextlib import contextmanager

import click

from imgindex.errors import DiskFullError, ImgIndexError
from imgindex.progress import ProgressLine


def user_errors(func):
    """Library errors become one-line messages (exit 1); Ctrl-C and SIGTERM exit 130 cleanly."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return func(*args, **kwargs)
        except ImgIndexError as exc:
            raise click.ClickException(str(exc)) from exc
        except sqlite3.OperationalError as exc:  # SQLITE_FULL mid-run: the transaction in hand was rolled back
            if "full" not in str(exc):
                raise
            raise click.ClickException(str(DiskFullError())) from exc
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


@contextmanager
def progress_bar(quiet: bool) -> Callable | None:
    """A progress line on stderr when it is a terminal and not ``quiet``; cleared at the end."""
    bar = ProgressLine() if not quiet and sys.stderr.isatty() else None
    try:
        yield bar
    finally:
        if bar is not None:
            bar.clear()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="imgindex")
def cli():
    """Find duplicate and similar images in large photo folders; the index lives in SQLite."""
