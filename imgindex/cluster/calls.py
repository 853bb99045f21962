"""Calls on a Dask cluster: a bounded number in flight, results as they finish, faults in one place.

A worker lost mid-call costs a retry: the scheduler runs the call again elsewhere (its arguments
travel with it, or were scattered to every worker). A lost scheduler, or a call that killed
worker after worker, ends the command with a ClusterError; what was written before is kept. On
Ctrl-C every call still queued or running is cancelled before KeyboardInterrupt goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from imgindex.cluster.connect import Cluster, ClusterError, distributed
from imgindex.errors import ImgIndexError

log = logging.getLogger(__name__)

DEPTH = 3  # calls queued per worker: enough to keep it busy while results travel


class Calls:
    """Submit ``func(*args)`` with a tag; ``done()`` yields (tag, result) as calls finish."""

    def __init__(self, cluster: Cluster, depth: int = DEPTH):
        self.cluster = cluster
        self.client = cluster.client
        self.limit = depth * max(cluster.workers, 1)
        self.finished = distributed().as_completed(loop=self.client.loop)
        self.tags: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.tags)

    def full(self) -> bool:
        return len(self.tags) >= self.limit

    def submit(self, tag, func, *args) -> None:
        try:
            future = self.client.submit(func, *args, pure=False)
        except Exception as exc:
            raise _lost(self.cluster, exc) from exc
        self.tags[future.key] = (tag, future)
        self.finished.add(future)

    def scatter(self, data) -> Any:
        """``data`` on every worker (a worker lost later leaves the others' copies)."""
        try:
            return self.client.scatter(data, broadcast=True, hash=False)
        except Exception as exc:
            raise _lost(self.cluster, exc) from exc

    def done(self, *, block: bool = True) -> Iterator[tuple[Any, Any]]:
        """(tag, result) of calls finished now; with ``block``, waits for at least one if any runs."""
        try:
            while self.tags and (block or self.finished.has_ready()):
                block = False
                future = next(self.finished)
                tag, _ = self.tags.pop(future.key)
                yield tag, _result(self.cluster, future)
        except KeyboardInterrupt:
            self.cancel()
            raise

    def cancel(self) -> None:
        futures = [f for _, f in self.tags.values()]
        self.tags.clear()
        try:
            self.client.cancel(futures, force=True)
        except Exception:  # the scheduler may be gone already
            log.debug("could not cancel the cluster's calls", exc_info=True)


def _result(cluster: Cluster, future) -> Any:
    try:
        return future.result()
    except ImgIndexError:
        raise
    except Exception as exc:
        if future.status == "error" and not _is_cluster_fault(exc):
            raise  # the call itself failed: the same error as in a local worker
        raise _lost(cluster, exc) from exc


def _is_cluster_fault(exc: BaseException) -> bool:
    from distributed.scheduler import KilledWorker

    return isinstance(exc, (KilledWorker, OSError, TimeoutError))


def _lost(cluster: Cluster, exc: BaseException) -> ClusterError:
    name = type(exc).__name__
    if name == "KilledWorker":
        return ClusterError(f"A call killed every Dask worker that ran it ({exc}); nothing of it was written."
                            " Run the same command again without --scheduler to see which file or task fails.")
    return ClusterError(f"Lost the Dask scheduler at {cluster.address} ({name}: {exc}). Everything written"
                        " before is kept: run the same command again once the cluster is back, and it goes on"
                        " from there.")
