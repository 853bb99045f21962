"""Click options that several commands share, defined once so their names and help stay in step."""

from __future__ import annotations

import click

from imgindex.api import DEFAULT_DB, PX_SIZE_RANGE


def together(*decorators):
    """Apply a list of click options as one decorator."""

    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


db_option = click.option("--db", "db_path", default=DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
                         help="SQLite file holding the index (created if missing).")
existing_db_option = click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
                                  type=click.Path(dir_okay=False, exists=True),
                                  help="SQLite file holding the index and its latest search.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
scheduler_option = click.option(
    "--scheduler", metavar="ADDRESS", envvar="IMGINDEX_SCHEDULER", default=None,
    help="Run on a Dask cluster: a scheduler's address (tcp://HOST:8786), or 'local' to start one on this"
         " machine with --processes workers (needs: pip install \"imgindex[dask]\").  [default: the local"
         " worker pool; env: IMGINDEX_SCHEDULER]")
processes_option = click.option("--processes", type=click.IntRange(min=1), default=None,
                                help="Worker processes  [default: number of CPUs].")
limit_extensions_option = click.option(
    "--limit-extensions/--no-limit-extensions", default=True, show_default=True,
    help="Only read files whose extension is an image format Pillow opens; others are counted as skipped.")
PX_SIZE_HELP = "Side of the square RGB tensor each image is reduced to; fixed for the life of an index."

# scan and find
scan_options = together(
    click.option("--recursive/--no-recursive", default=True, show_default=True, help="Also scan subfolders."),
    limit_extensions_option,
    click.option("--px-size", type=click.IntRange(*PX_SIZE_RANGE), default=50, show_default=True, help=PX_SIZE_HELP),
)

# how matches are found: search, find and watch. None = not given: the index's search profile decides
PROFILE_DEFAULT = "the index's profile, else "
reference_option = click.option(
    "--reference", "reference", multiple=True, type=click.Path(file_okay=False, exists=True),
    help="A reference folder (repeatable): its images are always kept, never moved or deleted, and compared only "
         "with the rest, never with each other. Stored with the index.")
match_options = together(
    click.option("--similarity", default=None, show_default=PROFILE_DEFAULT + "duplicates",
                 help="'duplicates' (MSE 0: identical tensors), 'similar' (MSE 6, or a matching tone, rank or "
                      "trimmed picture, but never two shots in which something moved; calibrated on real photos, "
                      "edited copies and same-scene shots) or an MSE threshold >= 0 (pixels only, as difPy)."),
    click.option("--signals", default=None, metavar="LIST",
                 show_default=PROFILE_DEFAULT + "the similarity's: all four for 'similar', else pixels",
                 help="What makes two images a pair, comma-separated: 'pixels' (MSE within the threshold), 'tone' "
                      "(the same light and dark with brightness, contrast and colour taken out: edited copies, "
                      "grayscale), 'rank' (the same order of light and dark: strong contrast, curves), 'trimmed' "
                      "(the picture inside letterbox bars or a mat). A pair matches when any signal does. "
                      "'default': the similarity's."),
    click.option("--rotate/--no-rotate", default=None, show_default=PROFILE_DEFAULT + "rotate",
                 help="Also match copies turned 90/180/270 degrees."),
    click.option("--same-dim/--no-same-dim", default=None, show_default=PROFILE_DEFAULT + "same-dim",
                 help="Only compare images of the same pixel dimensions (either orientation)."),
    click.option("--mirror/--no-mirror", default=None, show_default=PROFILE_DEFAULT + "no-mirror",
                 help="Also match mirrored (flipped) copies, in every rotation."),
    click.option("--keep", "keep", default=None, metavar="RULE", show_default=PROFILE_DEFAULT + "resolution,size,path",
                 help="Which member of a group is kept: criteria in order, comma-separated, from resolution, size, "
                      "oldest, newest, path, format (RAW > lossless > lossy), folder (see --prefer-folder). "
                      "A RAW is always kept over its renderings; pinned and reference images over any rule."),
    click.option("--prefer-folder", "prefer_folders", multiple=True, type=click.Path(file_okay=False),
                 help="Keep the copy under this folder (repeatable, in order of preference)."),
    reference_option,
    click.option("--save-profile", is_flag=True,
                 help="Make this command's settings the index's search profile, which later commands and the "
                      "watcher use."),
)

# search and find
search_options = together(
    match_options,
    click.option("--in-folder", is_flag=True, help="Search each root folder on its own; results nested by root."),
    click.option("--chunksize", type=click.IntRange(min=1), default=None,
                 help="Images per chunk in the chunked search (less = less memory)  [default: max(1e6/N, 1000)]."),
    click.option("--full", is_flag=True,
                 help="Compare everything again instead of only what is new since the last search."),
    click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
                 help="How to write the groups found."),
    click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
                 help="Write the result to this file instead of stdout."),
)

# watch: the match options, and the scan options that make sense for a running index
watch_options = together(
    match_options,
    limit_extensions_option,
    click.option("--px-size", type=click.IntRange(*PX_SIZE_RANGE), default=None,
                 help=PX_SIZE_HELP + "  [default: the index's, or 50]"),
)

# move-to, delete, undo
action_options = together(
    existing_db_option,
    click.option("-y", "--yes", is_flag=True, help="Act without asking (needed when not on a terminal)."),
    click.option("--dry-run", is_flag=True, help="Print the plan, file by file, and change nothing."),
    click.option("-q", "--quiet", is_flag=True,
                 help="No progress bar and no plan preview (files left alone or failed are still listed)."),
)
