"""``write_report``: check the request, gather the page's pieces in order, write the file all or nothing.

The output is the user's path, so it is guarded: a folder, a missing folder or a file that is not
an earlier imgindex report is refused (a typo in ``-o`` never costs a photo). The page is written
to an exclusive partial file beside it and moved into place, so a report is never half-written.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable

from sqlite_utils import Database

from imgindex.db.queries import resolve_search_id
from imgindex.errors import ImgIndexError
from imgindex.report.data import histogram_cap, load_groups, threshold_view
from imgindex.report.render import GENERATOR, render
from imgindex.report.thumbs import make_thumbnails
from imgindex.compare.results import search_stats
from imgindex.types import ReportProgress, ReportSummary


def write_report(db: Database, db_path: str, output: str | os.PathLike, *, limit_groups: int | None = None,
                 thumb_size: int = 256, search_id: int | None = None, processes: int | None = None,
                 progress: Callable[[ReportProgress], None] | None = None) -> ReportSummary:
    """Write the report of a search (the latest by default) to ``output``; see the package docstring."""
    started = time.monotonic()
    output = _checked_output(output, limit_groups, thumb_size)
    search_id = resolve_search_id(db, search_id)
    stats = search_stats(db, search_id)
    threshold = float(stats["threshold"])

    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(ReportProgress(stage, done, total, time.monotonic() - started))

    groups = load_groups(db, search_id)
    shown = groups[:limit_groups] if limit_groups else groups
    cap = histogram_cap(threshold)
    report("neighbours", 0, 1)
    view = threshold_view(db, db_path, search_id, cap, processes=processes)
    report("neighbours", 1, 1)
    wanted: dict[str, list[str]] = {}
    for m in [m for g in shown for m in g.members] + [m for pair in view.near_misses for m in pair[:2]]:
        wanted.setdefault(m.content_hash, []).append(m.path)  # byte copies share one thumbnail
    thumbs = make_thumbnails(wanted, thumb_size, processes=processes,
                             progress=lambda d, t: report("thumbnails", d, t))
    gone = {m.path for g in shown for m in g.members if not os.path.isfile(m.path)}
    commands = next_commands(db_path)
    page = render(stats, groups, shown, view, thumbs, commands, thumb_size=thumb_size, gone=gone)
    report("writing", 0, 1)
    tmp = f"{output}.imgindex-partial-{os.getpid()}"
    try:
        with open(tmp, "x", encoding="utf-8") as fp:
            fp.write(page)
        os.replace(tmp, output)  # an earlier report (checked above) is ours to replace; never half-written
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)  # our own partial file (a full disk, say)
    missing = sum(1 for g in shown for m in g.members if m.path in gone or thumbs[m.content_hash][0] is None)
    return ReportSummary(
        output=output, search_id=search_id, threshold=threshold, groups=len(groups), groups_shown=len(shown),
        images=sum(len(g.members) for g in groups), bytes_reclaimable=sum(g.reclaimable for g in groups),
        missing=missing, near_misses=view.near_miss_count, histogram_cap=cap, size_bytes=os.path.getsize(output),
        duration=time.monotonic() - started, next_commands=commands,
    )


def _checked_output(output: str | os.PathLike, limit_groups: int | None, thumb_size: int) -> str:
    """The absolute output path, once the options are valid and the path is one a report may take."""
    if limit_groups is not None and limit_groups < 1:
        raise ImgIndexError(f"limit_groups must be at least 1 (got {limit_groups}).")
    if not 16 <= thumb_size <= 2048:
        raise ImgIndexError(f"thumb_size must be between 16 and 2048 pixels (got {thumb_size}).")
    output = os.path.abspath(os.path.expanduser(os.fspath(output)))
    if os.path.isdir(output):
        raise ImgIndexError(f"{output} is a folder: give the report a file name, such as report.html.")
    if not os.path.isdir(os.path.dirname(output)):
        raise ImgIndexError(f"The folder {os.path.dirname(output)} does not exist: create it or choose another -o.")
    if os.path.lexists(output) and not is_report(output):
        raise ImgIndexError(f"{output} exists and is not an imgindex report: choose another -o "
                            "(imgindex replaces only its own reports, never your files).")
    return output


def is_report(path: str) -> bool:
    """True for a regular file that an earlier ``imgindex report`` wrote (so it may be replaced)."""
    try:
        if not os.path.isfile(path) or os.path.islink(path):
            return False
        with open(path, "rb") as fp:
            return GENERATOR.encode() in fp.read(2048)
    except OSError:
        return False


def next_commands(db_path: str) -> tuple[str, ...]:
    """The commands that act on the groups, each a dry run first (the page itself never acts)."""
    db = shlex.quote(str(db_path))
    return (f"imgindex move-to DEST --db {db} --dry-run", f"imgindex delete --db {db} --dry-run")
