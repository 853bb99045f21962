"""Calls on a Dask cluster: a bounded number in flight, results as they finish, faults in one place.

A worker lost mid-call costs a retry: the scheduler runs the call again elsewhere (its arguments
travel with it). Data scattered once for many calls goes to one worker, and the others fetch it
from there when a call needs it (sending it to every worker up front cost 2.5 s for 200 MB here,
one worker 0.5 s); if the only worker holding it dies, its calls come back as LOST, for the caller
to scatter it again and send them again. A lost scheduler, or a call that killed
worker after worker, ends the command with a ClusterError; what was written before is kept. A
scheduler that stops answering (frozen, or its machine gone silent: the connection stays open for
minutes) is lost too, once it leaves a ping unanswered. On Ctrl-C every call still queued or
running is cancelled before KeyboardInterrupt goes on.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from imgindex.cluster.connect import Cluster, ClusterError
from imgindex.errors import ImgIndexError

log = logging.getLogger(__name__)

DEPTH = 3  # calls queued per worker: enough to keep it busy while results travel
QUIET = 2.0  # seconds without a finished call before asking the scheduler whether it still answers
PING_TIMEOUT = 15.0  # seconds it has to answer (it answers in milliseconds, even when busy)
BIG = 1 << 20  # bytes of an array argument above which it is scattered, not put in the call
LOST = "lost"  # the result of a call whose scattered data died with its worker: scatter it again, resend


def is_lost(futures) -> bool:
    """Whether scattered data (a future, or a list or dict of them) is gone with its worker."""
    found = futures.values() if isinstance(futures, dict) else futures if isinstance(futures, list) else [futures]
    return any(getattr(f, "status", "finished") in ("cancelled", "lost", "error") for f in found)


class Calls:
    """Submit ``func(*args)`` with a tag; ``done()`` yields (tag, result) as calls finish."""

    def __init__(self, cluster: Cluster, depth: int = DEPTH):
        self.cluster = cluster
        self.client = cluster.client
        self.limit = depth * max(cluster.workers, 1)
        self.finished: queue.SimpleQueue = queue.SimpleQueue()  # futures as they finish, fed by their callbacks
        self.tags: dict[str, Any] = {}
        self.interrupted, self._sigint = False, None
        if threading.current_thread() is threading.main_thread():
            self._sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        """Ctrl-C, raised where it is safe: a KeyboardInterrupt raised in a Dask future's __del__
        (run by the garbage collector anywhere) is swallowed, and the command went on (seen in CI)."""
        self.interrupted = True
        self.finished.put(None)  # wakes a waiting done()

    def _check(self) -> None:
        if self.interrupted:
            self.interrupted = False
            raise KeyboardInterrupt

    def close(self) -> None:
        """Cancel what still runs, and give Ctrl-C back to Python."""
        self.cancel()
        if self._sigint is not None:
            signal.signal(signal.SIGINT, self._sigint)
            self._sigint = None
        self._check()

    def __len__(self) -> int:
        return len(self.tags)

    def full(self) -> bool:
        return len(self.tags) >= self.limit

    def submit(self, tag, func, *args) -> None:
        """``func(*args)`` on a worker; an array argument of more than BIG bytes goes to it directly
        (in the call, it would pass through the scheduler and stay in its memory)."""
        self._check()
        try:
            args = [self.scatter(a) if isinstance(a, np.ndarray) and a.nbytes > BIG else a for a in args]
            future = self.client.submit(func, *args, pure=False)
        except Exception as exc:
            raise _lost(self.cluster, exc) from exc
        self.tags[future.key] = (tag, future)
        future.add_done_callback(self.finished.put)  # also when cancelled: the connection lost

    def scatter(self, data) -> Any:
        """``data`` on one worker, for calls to read (the others fetch it from there as needed)."""
        try:
            return self.client.scatter(data, hash=False, direct=True)  # not through the scheduler
        except Exception as exc:
            raise _lost(self.cluster, exc) from exc

    def everywhere(self, func, *args) -> dict[str, Any]:
        """``func(*args)`` on every worker now: {worker address: result}."""
        try:
            return self.client.run(func, *args)
        except Exception as exc:
            raise _lost(self.cluster, exc) from exc

    def done(self, *, block: bool = True) -> Iterator[tuple[Any, Any]]:
        """(tag, result) of calls finished now; with ``block``, waits for at least one if any runs."""
        try:
            while self.tags and (block or not self.finished.empty()):
                self._check()
                future = self._next()
                self._check()
                if future is None or future.key not in self.tags:  # a Ctrl-C's wake-up, or cancelled before
                    continue
                block = False
                tag, _ = self.tags.pop(future.key)
                yield tag, self._result(future)
        except KeyboardInterrupt:
            self.cancel()
            raise

    def _next(self):
        """The next finished call's future, waiting QUIET seconds at a time and pinging in between."""
        while True:
            try:
                return self.finished.get(timeout=QUIET)
            except queue.Empty:
                self._ping()

    def _result(self, future) -> Any:
        """``future``'s result, fetched (through the scheduler) while pinging it: one frozen just after the
        call finished would hold the fetch for ever, and a fetch cut short would start again from nothing."""
        import asyncio  # here: 30 ms of every command's start otherwise, for runs on a cluster only

        fetch = asyncio.run_coroutine_threadsafe(self.client.gather(future, asynchronous=True),
                                                 self.client.loop.asyncio_loop)
        try:
            while True:
                try:
                    return fetch.result(timeout=QUIET)
                except TimeoutError:
                    if fetch.done():  # the call's own
                        raise
                    self._ping()
        except ImgIndexError:
            raise
        except Exception as exc:
            if future.status == "error" and not _killed_workers(exc):
                raise  # the call itself failed (whatever it raised): the same error as in a local worker
            if _cancelled(exc) and getattr(exc, "reason", None) != "scheduler-connection-lost":
                self._ping()  # a call cancelled while the scheduler answers: its scattered data died
                return LOST
            raise _lost(self.cluster, exc) from exc
        finally:
            fetch.cancel()

    def _ping(self) -> None:
        try:
            self.client.sync(self.client.scheduler.identity, callback_timeout=PING_TIMEOUT)
        except TimeoutError as exc:
            raise _lost(self.cluster, exc, f"it did not answer for {PING_TIMEOUT:.0f} s") from exc
        except Exception as exc:  # unreachable now (a network down), or the client closed
            raise _lost(self.cluster, exc) from exc

    def cancel(self) -> None:
        futures = [f for _, f in self.tags.values()]
        self.tags.clear()
        try:
            self.client.cancel(futures, force=True)
        except Exception:  # the scheduler may be gone already
            log.debug("could not cancel the cluster's calls", exc_info=True)


def _cancelled(exc: BaseException) -> bool:
    from distributed.client import FutureCancelledError

    return isinstance(exc, FutureCancelledError)


def _killed_workers(exc: BaseException) -> bool:
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker)


def _lost(cluster: Cluster, exc: BaseException, why: str | None = None) -> ClusterError:
    name = type(exc).__name__
    if name == "KilledWorker":
        return ClusterError(f"A call killed every Dask worker that ran it ({exc}); nothing of it was written."
                            " Run the same command again without --scheduler to see which file or task fails.")
    if why is None:  # one line: a cancelled call's text spans two, a closed comm's names its ends
        from distributed.comm import CommClosedError

        lost = isinstance(exc, CommClosedError) or getattr(exc, "reason", None) == "scheduler-connection-lost"
        why = "the connection to it was lost" if lost else " ".join(f"{name}: {exc}".split())
    return ClusterError(f"Lost the Dask scheduler at {cluster.address} ({why}). Everything written"
                        " before is kept: run the same command again once the cluster is back, and it goes on"
                        " from there.")
