"""A scan's files read on a Dask cluster: the workers open each file by its path, hash it and
decode it, and send back the file facts and the tensor; only this process writes them.

Every worker must see the photos at the same path as this machine (the same mount): a scan whose
folders some worker cannot see stops before it starts, naming them. A file a worker could not
find but this machine can (a folder mounted under the scanned one, missing there) is recorded as a scan error (``unreadable_on_worker``)
with what to do, never dropped as gone, and read again by the next scan. Workers have no index
to ask whether a content is known, so each file they get is decoded (the local pool skips the
decode of a copy already indexed); this process asks instead, and a known content's tensor is
dropped, so a moved file keeps its row and a copy shares its tensor, as with the local pool.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterator

from imgindex.cluster.calls import Calls
from imgindex.cluster.connect import Cluster, ClusterError
from imgindex.errors import DecodeError
from imgindex.scan.decode import FileResult, read_file, recipes
from imgindex.scan.diff import ReadTask
from imgindex.scan.reader import with_keys

CLUSTER_BATCH = 64  # files per call: a call costs the scheduler and the link milliseconds (8 a call: 1.6x the pool)


SAMPLE = 20  # names of a folder's entries a worker must find in it


def unseen(folders: dict[str, list[str]]) -> list[str]:
    """The folders this worker cannot see (runs on every worker): missing, or without any of the
    entries this machine sees in it (an empty mount point: the share not mounted there)."""
    return [f for f, names in folders.items()
            if not os.path.isdir(f) or (names and not any(os.path.lexists(os.path.join(f, n)) for n in names))]


def read_on_worker(paths: list[str], px_size: int) -> tuple[str, list[FileResult]]:
    """(this worker's host name, each file's FileResult): runs on a worker."""
    return socket.gethostname(), with_keys([read_file(path, px_size) for path in paths], px_size)


class ClusterReader:
    """``scan.reader``'s runner, on a cluster: submit ReadTasks, take (task, FileResult) pairs."""

    def __init__(self, cluster: Cluster, px_size: int, known: Callable[[str, tuple[str, ...]], bool],
                 roots: tuple[str, ...], batch_work: int = CLUSTER_BATCH):
        self.calls = Calls(cluster)
        self.known = known
        _check_roots(self.calls, cluster, roots)
        self.px_size, self.batch_work = px_size, batch_work
        self.batch: list[ReadTask] = []
        self.work = 0
        self.workers_started = cluster.workers

    def __enter__(self) -> ClusterReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, task: ReadTask, work: int = 1) -> None:
        self.batch.append(task)
        self.work += work

    def ready(self) -> Iterator[tuple[ReadTask, FileResult]]:
        """Results finished now; blocks only while the calls in flight are at their limit."""
        if self.work >= self.batch_work:
            while self.calls.full():
                yield from self._take(block=True)
            self._send()
        yield from self._take(block=False)

    def finish(self) -> Iterator[tuple[ReadTask, FileResult]]:
        while self.batch or len(self.calls):
            if self.batch and not self.calls.full():
                self._send()
            else:
                yield from self._take(block=True)

    def close(self) -> None:
        self.calls.close()

    def _send(self) -> None:
        batch, self.batch, self.work = self.batch, [], 0
        self.calls.submit(batch, read_on_worker, [t.path for t in batch], self.px_size)

    def _take(self, block: bool) -> Iterator[tuple[ReadTask, FileResult]]:
        for batch, (host, results) in self.calls.done(block=block):
            for task, result in zip(batch, results):
                if result.decoded is not None and self.known(result.content_hash, recipes(result.path)):
                    result = dataclasses.replace(result, decoded=None)  # the writer places it as known
                yield task, _seen_here(result, host)


def _check_roots(calls: Calls, cluster: Cluster, roots: tuple[str, ...]) -> None:
    """A ClusterError naming the workers that cannot see a folder this machine scans."""
    here = {r: _some_entries(r) for r in roots if os.path.isdir(r)}  # a watcher's may be gone here too
    blind = {worker: missing for worker, missing in calls.everywhere(unseen, here).items() if missing}
    if blind:
        folders = sorted({f for missing in blind.values() for f in missing})
        raise ClusterError(f"{len(blind)} of the {cluster.workers} Dask workers ({', '.join(sorted(blind))}) cannot"
                           f" see {', '.join(folders)}: every worker must see the photos at the same path as this"
                           " machine. Mount the folder there at that path, or run without those workers.")


def _some_entries(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for _, e in zip(range(SAMPLE), entries))
    except OSError:
        return []


def _seen_here(result: FileResult, host: str) -> FileResult:
    """A file the worker could not find is gone only if this machine cannot find it either."""
    if not result.vanished or not os.path.exists(result.path):
        return result
    error = DecodeError(result.path, "unreadable_on_worker",
                        f"the Dask worker on {host} cannot find this file, which this machine can: every"
                        " worker must see the photos at the same path (mount the folder there at that path);"
                        " the next scan reads it again")
    return FileResult(path=result.path, error=error)  # no size or time: the next scan tries it again
