"""difPy's Python API, so its users switch in one line: ``build`` then ``search``.

    import imgindex
    dif = imgindex.build("C:/Photos/", "D:/Backup/")      # was: difPy.build(...)
    se = imgindex.search(dif, similarity="similar")       # was: difPy.search(dif, ...)
    se.result, se.lower_quality, se.stats

Differences that fix difPy's defects: MSE without uint8 wrap-around, all four rotations,
groups that are connected components, a persistent index (``db=``) so the next ``build`` only
reads what changed. With ``db=None`` the index lives in a temporary folder that is removed
when the ``Build`` object goes away.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field

from imgindex.api import Index
from imgindex.progress import ProgressLine
from imgindex.types import ActionReport, ScanReport, SearchReport

log = logging.getLogger(__name__)


@dataclass
class Build:
    """What ``build`` returns: the index, the folders it covers, and difPy-style ``stats``."""

    index: Index
    directories: tuple[str, ...]
    in_folder: bool
    report: ScanReport
    stats: dict
    _tempdir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def close(self) -> None:
        self.index.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __del__(self):  # a notebook user never calls close(): the temporary index goes anyway
        try:
            self.close()
        except Exception:
            pass


def build(
    *directories: str | os.PathLike,
    recursive: bool = True,
    in_folder: bool = False,
    limit_extensions: bool = True,
    px_size: int = 50,
    show_progress: bool = True,
    processes: int | None = None,
    db: str | os.PathLike | None = None,
) -> Build:
    """Index ``directories`` (difPy's ``build``). Keep ``db=`` to make the next build incremental."""
    tempdir = tempfile.TemporaryDirectory(prefix="imgindex-") if db is None else None
    index = Index(os.path.join(tempdir.name, "imgindex.db") if tempdir else db)
    start = time.time()
    bar = ProgressLine() if show_progress else None
    try:
        report = index.scan(list(directories), recursive=recursive, limit_extensions=limit_extensions,
                            px_size=px_size, processes=processes, progress=bar)
    except BaseException:
        index.close()
        if tempdir:
            tempdir.cleanup()
        raise
    finally:
        if bar is not None:
            bar.clear()
    stats = {
        "directory": list(report.roots),
        "process": {
            "build": {
                "duration": {"start": start, "end": time.time(), "seconds_elapsed": round(report.duration, 4)},
                "parameters": {
                    "recursive": recursive,
                    "in_folder": in_folder,
                    "limit_extensions": limit_extensions,
                    "px_size": px_size,
                    "processes": report.workers or 1,
                },
                "total_files": {"count": report.seen},
                "invalid_files": {
                    "count": len(report.errors),
                    "logs": {e.path: f"{e.error_class}: {e.message}" for e in report.errors},
                },
                "skipped_files": {"count": report.skipped},
            }
        },
    }
    return Build(index, report.roots, in_folder, report, stats, tempdir)


class Search:
    """What ``search`` returns: ``result``, ``lower_quality`` and ``stats`` in difPy's shapes."""

    def __init__(self, dif: Build, report: SearchReport):
        self.dif = dif
        self.report = report
        self.result = dif.index.result(report.search_id)
        self.lower_quality = dif.index.lower_quality(report.search_id)
        search_stats = dif.index.search_stats(report.search_id)
        self.stats = dict(dif.stats)
        self.stats["process"] = dict(dif.stats["process"])
        self.stats["process"]["search"] = {
            "duration": {"seconds_elapsed": round(report.duration, 4)},
            "parameters": {
                key: search_stats[key]
                for key in ("similarity", "threshold", "rotate", "mirror", "same_dim", "in_folder", "algorithm",
                            "processes", "chunksize")
            },
            "files_searched": report.images,
            "matches_found": {"files": len(self.lower_quality) + len(self._keepers()), "groups": report.groups,
                              "pairs": report.pairs},
        }

    def _keepers(self) -> list[str]:
        if self.dif.in_folder:
            return [k for nested in self.result.values() for k in nested]
        return list(self.result)

    def move_to(self, destination: str | os.PathLike) -> ActionReport:
        """Move ``lower_quality`` under ``destination``, keeping folders; journaled, undoable, never overwriting.

        ``lower_quality`` then lists the files' new paths (difPy does the same).
        """
        report = self.dif.index.move_to(destination)
        self._after(report)
        self.lower_quality = [o.destination for o in report.outcomes if o.outcome == "done"] + [
            o.source for o in report.outcomes if o.outcome != "done"
        ]
        return report

    def delete(self, silent_del: bool = False, *, permanent: bool = False) -> ActionReport | None:
        """Send ``lower_quality`` to the system trash (asks first unless ``silent_del``); ``permanent`` skips the trash."""
        plan = self.dif.index.plan_delete(permanent=permanent)
        if not silent_del:
            where = "PERMANENTLY" if permanent else "to the trash"
            answer = input(f"Delete {len(plan.actions)} lower-quality images {where}? (y/n) ")
            if answer.strip().lower() not in ("y", "yes"):
                return None
        report = self.dif.index.apply(plan)
        self._after(report)
        self.lower_quality = [o.source for o in report.outcomes if o.outcome != "done"]
        return report

    def _after(self, report: ActionReport) -> None:
        for outcome in report.outcomes:
            if outcome.outcome != "done":
                log.warning("%s: %s (%s)", outcome.source, outcome.outcome, outcome.message)


def search(
    dif: Build,
    similarity: str | float = "duplicates",
    rotate: bool = True,
    same_dim: bool = True,
    show_progress: bool = True,
    processes: int | None = None,
    chunksize: int | None = None,
    *,
    mirror: bool = False,
) -> Search:
    """Find duplicates (``similarity='duplicates'``), near-duplicates ('similar') or pairs within an MSE."""
    bar = ProgressLine() if show_progress else None
    try:
        report = dif.index.search(similarity=similarity, rotate=rotate, mirror=mirror, same_dim=same_dim,
                                  in_folder=dif.in_folder, roots=dif.directories, processes=processes,
                                  chunksize=chunksize, progress=bar)
    finally:
        if bar is not None:
            bar.clear()
    return Search(dif, report)
