"""difPy's Python API, so its users switch in one line: ``build`` then ``search``.

    import imgindex as difPy                               # was: import difPy
    dif = difPy.build("C:/Photos/", "D:/Backup/")
    se = difPy.search(dif, similarity="similar")
    se.result, se.lower_quality, se.stats

``stats`` has every key of difPy 4.2.1 at difPy's path, with difPy's types and meaning (ISO
times, ``total_files`` counting every file found, ``invalid_files`` with difPy's reasons,
``similarity_mse``, ``matches_found`` as duplicates and similar); imgindex's own facts sit
beside them. Where results differ on purpose (exact MSE, all four rotations, 'similar' = 6,
groups that are connected components, moves that never replace a file, delete to the trash),
README's "Coming from difPy" says so. With ``db=None`` the index lives in a temporary folder
removed with the ``Build`` object; ``db=`` keeps it, so the next ``build`` reads only what changed.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from imgindex.api import Index, skipped_kind
from imgindex.progress import ProgressLine
from imgindex.types import ActionReport, ScanReport, SearchReport

log = logging.getLogger(__name__)

UNSUPPORTED = "Unsupported file type"  # difPy's reason for a file it does not try to read
NOT_READ = {skipped_kind(name) for name in ("x.txt", "x.mov", "x.dng", "x.jxl")}  # the walk's reasons for the same
PRESET_MSE = {"duplicates": 0, "similar": 6}  # as difPy reports them (ints); imgindex's 'similar' is 6, difPy's 5


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


def _directories(given: tuple) -> list[str]:
    """difPy's ways of naming folders: strings, or lists of them; a missing one is FileNotFoundError, as in difPy."""
    flat = [os.fspath(d) for item in given for d in (item if isinstance(item, (list, tuple)) else [item])]
    if not flat:
        raise ValueError("Invalid directory parameter: no directory provided.")
    for d in flat:
        if not os.path.exists(d):
            raise FileNotFoundError(f'Directory "{d}" does not exist')
    return sorted(flat)


def build(
    *directories: str | os.PathLike | list,
    recursive: bool = True,
    in_folder: bool = False,
    limit_extensions: bool = True,
    px_size: int = 50,
    show_progress: bool = True,
    processes: int | None = None,
    db: str | os.PathLike | None = None,
    scheduler=None,
) -> Build:
    """Index ``directories`` (difPy's ``build``). Keep ``db=`` to make the next build incremental.
    ``scheduler``: decode on a Dask cluster (``Index.scan``)."""
    folders = _directories(directories)
    tempdir = tempfile.TemporaryDirectory(prefix="imgindex-") if db is None else None
    index = Index(os.path.join(tempdir.name, "imgindex.db") if tempdir else db)
    start = datetime.now()
    bar = ProgressLine() if show_progress else None
    try:
        report = index.scan(folders, recursive=recursive, limit_extensions=limit_extensions, px_size=px_size,
                            processes=processes, progress=bar, scheduler=scheduler)
        logs = {e.path: f"{e.error_class}: {e.message}" for e in index.scan_errors(report.roots)}
    except BaseException:
        index.close()
        if tempdir:
            tempdir.cleanup()
        raise
    finally:
        if bar is not None:
            bar.clear()
    end = datetime.now()
    logs.update((s.path, UNSUPPORTED if s.reason in NOT_READ else s.reason) for s in report.skipped_files)
    stats = {
        "directory": folders,
        "total_files": report.seen + report.skipped,
        "invalid_files": {"count": len(logs), "logs": logs},
        "process": {
            "build": {
                "duration": _duration(start, end),
                "parameters": {"recursive": recursive, "in_folder": in_folder, "limit_extensions": limit_extensions,
                               "px_size": px_size,
                               "processes": os.cpu_count() if processes is None else processes},
                # imgindex's own counts, beside difPy's
                "total_files": {"count": report.seen},
                "invalid_files": {"count": report.failed, "logs": {e.path: f"{e.error_class}: {e.message}"
                                                                   for e in report.errors}},
                "skipped_files": {"count": report.skipped},
                "workers": report.workers,
            }
        },
    }
    return Build(index, report.roots, in_folder, report, stats, tempdir)


def _duration(start: datetime, end: datetime) -> dict:
    return {"start": start.isoformat(), "end": end.isoformat(),
            "seconds_elapsed": round((end - start).total_seconds(), 4)}


class Search:
    """What ``search`` returns: ``result``, ``lower_quality`` and ``stats`` in difPy's shapes."""

    def __init__(self, dif: Build, report: SearchReport, *, start: datetime, end: datetime,
                 similarity: str | float, chunksize: int | None):
        self.dif = dif
        self.report = report
        index = dif.index
        self.result = index.result(report.search_id)
        self.lower_quality = index.lower_quality(report.search_id)
        ours = index.search_stats(report.search_id)
        duplicates, similar = _matches_found(self.result, dif.in_folder)
        self.stats = dict(dif.stats)
        self.stats["process"] = dict(dif.stats["process"])
        self.stats["process"]["search"] = {
            "duration": _duration(start, end),
            "parameters": {
                "similarity_mse": _similarity_mse(similarity, report.threshold),
                "rotate": ours["rotate"],
                "same_dim": ours["same_dim"],
                "processes": ours["processes"],
                "chunksize": chunksize,
                # imgindex's own, beside difPy's
                "similarity": ours["similarity"], "threshold": ours["threshold"], "mirror": ours["mirror"],
                "in_folder": ours["in_folder"], "algorithm": ours["algorithm"], "chunksize_used": ours["chunksize"],
            },
            "files_searched": report.images,
            "matches_found": {"duplicates": duplicates, "similar": similar,
                              "files": _grouped_files(self.result, dif.in_folder), "groups": report.groups,
                              "pairs": report.pairs},
        }

    def move_to(self, destination_path: str | os.PathLike) -> ActionReport:
        """Move ``lower_quality`` under ``destination_path``, keeping folders; journaled, undoable, never overwriting.

        ``lower_quality`` then lists the files' new paths (difPy does the same).
        """
        report = self.dif.index.move_to(destination_path)
        self._after(report)
        self.lower_quality = [o.destination for o in report.outcomes if o.outcome == "done"] + [
            o.source for o in report.outcomes if o.outcome != "done"
        ]
        return report

    def delete(self, silent_del: bool = False, *, permanent: bool = False) -> ActionReport | None:
        """Send ``lower_quality`` to the system trash (asks first unless ``silent_del``); ``permanent`` skips the trash."""
        plan = self.dif.index.plan_delete(permanent=permanent)
        if not silent_del and plan.actions:
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


def _matches_found(result: dict, in_folder: bool) -> tuple[int, int]:
    """difPy's counts: matches listed in the result at MSE 0 (duplicates) and above it (similar)."""
    groups = [g for nested in result.values() for g in nested.values()] if in_folder else list(result.values())
    mses = [mse for matches in groups for _path, mse in matches]
    return sum(m == 0 for m in mses), sum(m > 0 for m in mses)


def _grouped_files(result: dict, in_folder: bool) -> int:
    """Every image in a group: each keeper and its matches (kept ones too, which ``lower_quality`` leaves out)."""
    groups = [g for nested in result.values() for g in nested.items()] if in_folder else list(result.items())
    return sum(1 + len(matches) for _keeper, matches in groups)


def _similarity_mse(similarity, threshold: float):
    """As difPy reports it: an int for the presets, the float of any number given."""
    if isinstance(similarity, str) and similarity.strip().lower() in PRESET_MSE:
        return PRESET_MSE[similarity.strip().lower()]
    return threshold


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
    reference: str | os.PathLike | Iterable[str | os.PathLike] | None = None,
    scheduler=None,
    signals: str = "pixels",
) -> Search:
    """Find duplicates (``similarity='duplicates'``), near-duplicates ('similar') or pairs within an MSE.

    ``signals``: pixel MSE only, as difPy compares (its 'similar' is an MSE); 'pixels,tone' or
    'default' adds imgindex's tone signal (edited copies: brightness, contrast, grayscale).
    ``reference``: a folder or a list of folders, under the built ones, whose images are always kept
    (never in ``lower_quality``, never moved or deleted; a group's key in ``result`` unless an image
    in it is pinned) and not compared with each other; stored with the index, as
    ``imgindex search --reference`` does. ``scheduler``: compare on a Dask cluster (``Index.search``).
    """
    folders = [] if reference is None else [reference] if isinstance(reference, (str, os.PathLike)) else list(reference)
    bar = ProgressLine() if show_progress else None
    start = datetime.now()
    try:
        # difPy's settings, passed every time: an index's stored search profile never changes what is compared
        report = dif.index.search(similarity=similarity, rotate=rotate, mirror=mirror, same_dim=same_dim,
                                  in_folder=dif.in_folder, roots=dif.directories, processes=processes,
                                  chunksize=chunksize, reference=folders, progress=bar, scheduler=scheduler,
                                  signals=signals)
    finally:
        if bar is not None:
            bar.clear()
    return Search(dif, report, start=start, end=datetime.now(), similarity=similarity, chunksize=chunksize)

