"""``Index``: the Python API over one SQLite index file. The CLI calls these methods and nothing else."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from sqlite_utils import Database

from imgindex import actions, compare, indexer, results, store
from imgindex.actions import ActionPlan, ActionProgress, ActionReport
from imgindex.compare import SearchProgress, SearchReport
from imgindex.indexer import ScanProgress, ScanReport
from imgindex.store import VectorChunk

DEFAULT_DB = "imgindex.db"


class Index:
    """An image index stored in SQLite; created and upgraded on open.

    >>> with Index("photos.db") as index:
    ...     report = index.scan(["~/Pictures"])
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_DB):
        self.path = Path(os.path.expanduser(os.fspath(path))).absolute()
        self.db: Database = store.connect(self.path)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def scan(
        self,
        paths: Iterable[str | os.PathLike] | str | os.PathLike,
        *,
        recursive: bool = True,
        limit_extensions: bool = True,
        px_size: int = 50,
        processes: int | None = None,
        progress: Callable[[ScanProgress], None] | None = None,
    ) -> ScanReport:
        """Bring the index in line with ``paths``: add new files, re-read changed ones, drop gone ones.

        ``processes`` defaults to the CPU count; ``progress`` is called with a ScanProgress as
        work advances. Files that cannot be decoded are recorded in ``scan_errors``, never raised.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        roots = [os.path.expanduser(os.fspath(p)) for p in paths]
        return indexer.scan(
            self.db,
            str(self.path),
            roots,
            recursive=recursive,
            limit_extensions=limit_extensions,
            px_size=px_size,
            processes=processes,
            progress=progress,
        )

    def search(
        self,
        *,
        similarity: str | float = "duplicates",
        rotate: bool = True,
        mirror: bool = False,
        same_dim: bool = True,
        in_folder: bool = False,
        roots: Iterable[str | os.PathLike] = (),
        processes: int | None = None,
        chunksize: int | None = None,
        full: bool = False,
        progress: Callable[[SearchProgress], None] | None = None,
    ) -> SearchReport:
        """Find matching pairs among indexed images (those under ``roots``, or all) and group them.

        Incremental by default: after a scan, only images added or moved since the last search
        with the same settings are compared (against all). ``full=True`` starts over.
        """
        return compare.search(
            self.db,
            str(self.path),
            similarity=similarity,
            rotate=rotate,
            mirror=mirror,
            same_dim=same_dim,
            in_folder=in_folder,
            roots=tuple(os.path.expanduser(os.fspath(r)) for r in roots),
            processes=processes,
            chunksize=chunksize,
            full=full,
            progress=progress,
        )

    def result(self, search_id: int | None = None) -> dict:
        """difPy's shape, {keeper_path: [[match_path, mse], ...]}, of the latest (or given) search."""
        return results.result(self.db, search_id)

    def lower_quality(self, search_id: int | None = None) -> list[str]:
        """Paths of every matched image except its group's keeper."""
        return results.lower_quality(self.db, search_id)

    def plan_move_to(self, destination: str | os.PathLike) -> ActionPlan:
        """What ``move_to`` would do: each lower_quality image of the latest search and its new path."""
        actions.recover(self.db)
        return actions.plan_move_to(self.db, destination)

    def plan_delete(self, *, permanent: bool = False) -> ActionPlan:
        """What ``delete`` would do: each lower_quality image of the latest search."""
        actions.recover(self.db)
        return actions.plan_delete(self.db, permanent=permanent)

    def plan_undo(self, *, run_id: int | None = None, action_id: int | None = None) -> ActionPlan:
        """What ``undo`` would put back: a run's files (the latest run by default) or one action's."""
        actions.recover(self.db)
        return actions.plan_undo(self.db, run_id=run_id, action_id=action_id)

    def apply(self, plan: ActionPlan, *, progress: Callable[[ActionProgress], None] | None = None) -> ActionReport:
        """Carry out a plan, journaled in ``actions``; every file is re-checked before it is touched."""
        return actions.apply(self.db, str(self.path), plan, progress=progress)

    def move_to(self, destination: str | os.PathLike, **options) -> ActionReport:
        """Move lower_quality images under ``destination`` (folders kept, nothing overwritten); see apply."""
        return self.apply(self.plan_move_to(destination), **options)

    def delete(self, *, permanent: bool = False, **options) -> ActionReport:
        """Send lower_quality images to the system trash (or delete them for good with ``permanent``)."""
        return self.apply(self.plan_delete(permanent=permanent), **options)

    def undo(self, *, run_id: int | None = None, action_id: int | None = None, **options) -> ActionReport:
        """Put back what the latest (or given) move-to / delete moved or trashed."""
        return self.apply(self.plan_undo(run_id=run_id, action_id=action_id), **options)

    def report(
        self,
        output: str | os.PathLike,
        *,
        limit_groups: int | None = None,
        thumb_size: int = 256,
        search_id: int | None = None,
        processes: int | None = None,
        progress: Callable | None = None,
    ):
        """Write the HTML report of a search (the latest by default); returns a ReportSummary. Never acts."""
        from imgindex.report import write_report

        return write_report(self.db, str(self.path), output, limit_groups=limit_groups, thumb_size=thumb_size,
                            search_id=search_id, processes=processes, progress=progress)

    def status(self):
        """Images, errors, the last scan and search, and whether a watcher is running (a Status)."""
        from imgindex.status import status

        return status(self.db)

    def watch(self, roots, *, stop, **options) -> None:
        """Keep the index and matches current until ``stop`` (a threading.Event) is set; see Watcher."""
        from imgindex.watch import Watcher

        Watcher(self, roots, **options).run(stop)

    def count(self) -> int:
        """Number of indexed images."""
        return self.db.execute("SELECT count(*) FROM images").fetchone()[0]

    @property
    def px_size(self) -> int | None:
        value = store.get_setting(self.db, "px_size")
        return None if value is None else int(value)

    def vectors(self, *, chunk_size: int = 4096, min_id: int = 0) -> Iterator[VectorChunk]:
        """Stream stored tensors in id order, ``chunk_size`` at a time."""
        return store.iter_vector_chunks(self.db.conn, chunk_size=chunk_size, min_id=min_id)
