"""``imgindex difpy``: difPy 4.2.1's command line, flag for flag, so scripts switch by program name.

    python dif.py -D Photos Backup -Z out -s similar -mv dups     # difPy
    imgindex difpy -D Photos Backup -Z out -s similar -mv dups    # the same job, the same three files

Parsed with argparse exactly as difPy parses it (its flags, defaults and yes/no words), then
run through the difPy-shaped API. Writes ``difPy_<timestamp>_results.json``,
``difPy_<timestamp>_lower_quality.txt`` and ``difPy_<timestamp>_stats.json`` into ``-Z``
(default: the working folder). ``--db FILE`` keeps the index, so the next run reads only what
changed. Unlike difPy, ``-mv`` never replaces a file and ``-d`` sends files to the trash.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime

import click

from imgindex.cli.app import cli
from imgindex.compat.difpy import build, search
from imgindex.errors import ImgIndexError


def yes_no(value) -> bool:
    """difPy's true/false words."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("Boolean value expected")


def int_or_text(value: str):
    """difPy lets -s, -proc and -ch be numbers or words."""
    try:
        return int(value)
    except ValueError:
        return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imgindex difpy",
                                description="Find duplicate or similar images, with difPy's command line.")
    flag = dict(type=yes_no, choices=[True, False], required=False)
    p.add_argument("-D", "--directory", type=str, nargs="+", default=[os.getcwd()],
                   help="Paths of the directories to be searched. Default is working dir.")
    p.add_argument("-Z", "--output_directory", type=str, default=None,
                   help="Output directory path for the difPy result files. Default is working dir.")
    p.add_argument("-r", "--recursive", default=True, help="Search recursively within the directories.", **flag)
    p.add_argument("-i", "--in_folder", default=False, help="Search for matches in each directory on its own.", **flag)
    p.add_argument("-le", "--limit_extensions", default=True, help="Limit search to known image file extensions.",
                   **flag)
    p.add_argument("-px", "--px_size", type=int, default=50, help="Compression size of images in pixels.")
    p.add_argument("-s", "--similarity", type=int_or_text, default="duplicates",
                   help="'duplicates', 'similar' or an MSE threshold.")
    p.add_argument("-ro", "--rotate", default=True, help="Rotate images during comparison process.", **flag)
    p.add_argument("-dim", "--same_dim", default=True, help="Only compare images having the same dimensions.", **flag)
    p.add_argument("-mv", "--move_to", type=str, default=None,
                   help="Move lower quality images among matches here (never replacing a file).")
    p.add_argument("-d", "--delete", default=False,
                   help="Delete lower quality images among matches (to the system trash).", **flag)
    p.add_argument("-sd", "--silent_del", default=False, help="Do not ask before deleting.", **flag)
    p.add_argument("-p", "--show_progress", default=True, help="Show the progress.", **flag)
    p.add_argument("-proc", "--processes", type=int_or_text, default=os.cpu_count(),
                   help="Number of worker processes.")
    p.add_argument("-ch", "--chunksize", type=int_or_text, default=None,
                   help="Images per chunk in the chunked search (less = less memory).")
    p.add_argument("-la", "--lazy", default=None, help="(Renamed to -dim / --same_dim in difPy 4.2.)", **flag)
    p.add_argument("--db", default=None, help="imgindex: keep the index in this SQLite file (the next run reads "
                                              "only what changed). Default: a temporary index.")
    return p


def run(argv: list[str]) -> int:
    """Parse difPy's flags and do difPy's job; the exit status."""
    args = parser().parse_args(argv)  # a bad flag exits 2, as difPy's does
    if args.lazy is not None:
        raise ImgIndexError('Parameter "-la" / "lazy" was renamed to "-dim" / "same_dim" with difPy v4.2.')
    if args.move_to is not None and args.delete:
        raise ImgIndexError('"move_to" and "delete" parameter are mutually exclusive. Please select one of them.')
    out = args.output_directory or os.getcwd()
    os.makedirs(out, exist_ok=True)
    dif = build(args.directory, recursive=args.recursive, in_folder=args.in_folder,
                limit_extensions=args.limit_extensions, px_size=args.px_size, show_progress=args.show_progress,
                processes=args.processes, db=args.db)
    try:
        se = search(dif, similarity=args.similarity, rotate=args.rotate, same_dim=args.same_dim,
                    show_progress=args.show_progress, processes=args.processes, chunksize=args.chunksize)
        names = write_files(se, out)
        click.echo("\n" + "\n".join(names) + f"\n\nsaved in '{out}'.")
        if args.move_to is not None:
            report = se.move_to(args.move_to)
            click.echo(f'Moved {report.done} files(s) to "{os.path.abspath(args.move_to)}"')
        if args.delete:
            report = se.delete(silent_del=args.silent_del)
            click.echo(f"Deleted {report.done if report else 0} file(s) (to the system trash)")
    finally:
        dif.close()
    return 0


def write_files(se, folder: str) -> list[str]:
    """difPy's three files, with its names and contents."""
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    names = [f"difPy_{stamp}_results.json", f"difPy_{stamp}_lower_quality.txt", f"difPy_{stamp}_stats.json"]
    with open(os.path.join(folder, names[0]), "w", encoding="utf-8") as fp:
        json.dump(se.result, fp)
    with open(os.path.join(folder, names[1]), "w", encoding="utf-8") as fp:
        fp.write(f"{list(se.lower_quality)}")  # difPy writes the Python list as it prints
    with open(os.path.join(folder, names[2]), "w", encoding="utf-8") as fp:
        json.dump(se.stats, fp)
    return names


@cli.command("difpy", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                        "help_option_names": []}, add_help_option=False)
@click.pass_context
def difpy(ctx):
    """difPy's command line (-D -Z -r -i -le -px -s -ro -dim -mv -d -sd -p -proc -ch): see `imgindex difpy -h`."""
    try:
        sys.exit(run(ctx.args))
    except (ImgIndexError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("\nInterrupted.", err=True)
        sys.exit(130)
