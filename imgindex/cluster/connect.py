"""The scheduler a command runs on: none (the local worker pool), an address, ``local``, or a Client.

``local`` starts a ``distributed.LocalCluster`` in a fresh interpreter (``host``): a LocalCluster
started in the caller's process spawns workers that re-import the caller's ``__main__``, which
fails for a script read from stdin ("Nanny failed to start") and runs a script without a main guard
again in every worker. Its scheduler listens on 127.0.0.1 only, over TLS with a certificate made
for this run and required of every peer: no other program on the machine can join it or send it
work. ``IMGINDEX_SCHEDULER`` names a scheduler when the option is not given.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from imgindex.errors import ImgIndexError
from imgindex.workers import fresh_interpreter_env

log = logging.getLogger(__name__)

ENV = "IMGINDEX_SCHEDULER"
CONNECT_TIMEOUT = 30  # seconds to reach a scheduler
HOST_TIMEOUT = 120  # seconds for the local cluster to start
WORKER_TIMEOUT = 30  # seconds a scheduler without workers gets for one to join


class ClusterError(ImgIndexError):
    """The Dask cluster could not be reached, was lost, or the extra is not installed."""


@dataclass
class Cluster:
    """A connected Dask client and what ``imgindex status`` says of it."""

    client: Any
    address: str
    local: bool = False

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {})) if self.client else 0

    def label(self) -> str:
        kind = "dask local" if self.local else f"dask {self.address}"
        return f"{kind} ({self.workers} workers)"


class Starting(Cluster):
    """The local cluster while it starts, in a thread: the command plans meanwhile (a search's
    planning took as long as the start, 1.7 s, at 200,000 images), and waits at first use."""

    def __init__(self, start, workers: int, eager: bool = True):
        super().__init__(None, "local", local=True)
        self.asked, self._client, self._error = workers, None, None
        self._thread = threading.Thread(target=self._start, args=(start,), daemon=True)
        self._begun = eager
        if eager:
            self._thread.start()

    def _start(self, start) -> None:
        try:
            self._client, self.address = start()
        except BaseException as exc:  # raised where the cluster is first used
            self._error = exc

    @property
    def client(self):
        if not self._begun:  # started at first use
            self._begun = True
            self._thread.start()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._client

    @client.setter
    def client(self, value) -> None:  # the dataclass's __init__ sets it
        pass

    def label(self) -> str:
        return f"dask local ({self.asked} workers)"

    def settled(self):
        """The client once the start ended, or None if it failed or never began."""
        if self._begun:
            self._thread.join()
        return self._client


def executor(cluster: Cluster | None, processes: int) -> str:
    """What ran a scan's or a search's work, as ``imgindex status`` shows it."""
    return cluster.label() if cluster is not None else f"local pool ({processes} processes)"


def distributed():
    """The ``distributed`` module, or a ClusterError saying how to install it."""
    try:
        import distributed as module
    except ImportError as exc:
        raise ClusterError('Running on a Dask cluster needs the dask extra: pip install "imgindex[dask]"'
                           f" (could not import distributed: {exc}).") from None
    return module


def chosen(scheduler) -> Any:
    """The scheduler asked for: the argument, else ``IMGINDEX_SCHEDULER``, else None (the local pool)."""
    if scheduler is None:
        scheduler = os.environ.get(ENV) or None
    if isinstance(scheduler, str):
        scheduler = scheduler.strip() or None
    return scheduler


@contextmanager
def open_cluster(scheduler, *, workers: int | None = None, eager: bool = True):
    """A Cluster for ``scheduler`` (None: yields None), closed (and a local one stopped) on exit.
    ``workers``: the local cluster's worker processes (default: the CPU count)."""
    scheduler = chosen(scheduler)
    if scheduler is None:
        yield None
    elif isinstance(scheduler, Cluster):
        yield scheduler
    elif not isinstance(scheduler, str):  # a distributed.Client the caller made and keeps
        yield Cluster(scheduler, str(getattr(scheduler.scheduler, "address", "client")))
    elif scheduler.lower() == "local":
        with _quiet("distributed.batched", logging.WARNING), _local(workers or os.cpu_count() or 1, eager) as cluster:
            yield cluster
    else:
        with _quiet("distributed.batched", logging.WARNING), _remote(scheduler) as cluster:
            yield cluster


@contextmanager
def _remote(address: str):
    if "://" not in address:
        raise ClusterError(f"A scheduler is 'local' or an address like tcp://HOST:8786 (got {address!r}).")
    module = distributed()
    try:
        _knock(address)
        client = module.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except ValueError as exc:  # before the Client, which would then hang the exit for 60 s
        raise ClusterError(f"A scheduler is 'local' or an address like tcp://HOST:8786 ({exc}).") from None
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"Could not reach the Dask scheduler at {address}: {exc}. Is `dask scheduler`"
                           " running there, and reachable from this machine?") from None
    try:
        _wait_for_a_worker(client, address)
        yield Cluster(client, address)
    finally:
        _close(client)


def _wait_for_a_worker(client, address: str) -> None:
    """A scheduler without workers answers every ping and runs nothing: say so instead of waiting."""
    try:
        client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
    except TimeoutError:
        raise ClusterError(f"The Dask scheduler at {address} has no workers (none joined in {WORKER_TIMEOUT} s):"
                           f" start `dask worker {address}` on the machines that see the photos.") from None


@contextmanager
def _local(workers: int, eager: bool = True):
    """A LocalCluster of ``workers`` single-threaded worker processes, in a host process of its own,
    started now in the background (``eager``) or at its first use. Dask is imported there too: a
    search that never uses the cluster (exact duplicates) does not pay the 0.3 s of its import."""
    if importlib.util.find_spec("distributed") is None:
        distributed()  # the ClusterError saying how to install it, now
    hosts: list[subprocess.Popen] = []

    def start():
        module = distributed()
        from distributed.security import Security

        try:
            security = Security.temporary()
        except ImportError as exc:
            raise ClusterError(f'The local cluster needs the dask extra in full: pip install "imgindex[dask]" ({exc}).')
        host = subprocess.Popen([sys.executable, "-m", "imgindex.cluster.host"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=fresh_interpreter_env())
        hosts.append(host)
        host.stdin.write(pickle.dumps({"workers": workers, "security": security}))
        host.stdin.flush()
        line = host.stdout.readline().decode().strip()
        if not line.startswith("tls://"):
            raise ClusterError(f"The local Dask cluster did not start (its process said {line!r}; see above).")
        client = module.Client(line, security=security, timeout=HOST_TIMEOUT, set_as_default=False)
        client.wait_for_workers(workers, timeout=HOST_TIMEOUT)
        return client, line

    cluster = Starting(start, workers, eager)
    try:
        yield cluster
    finally:
        client = cluster.settled()
        if client is not None:
            _close(client)
        for host in hosts:
            _stop(host)


def _knock(address: str) -> None:
    """ValueError for an address the Client cannot use (an unknown scheme, no port); OSError at once
    when nothing listens at one over TCP (tcp, tls, ws): the Client would retry a refused connection
    (or a name that does not resolve) for the whole CONNECT_TIMEOUT."""
    from distributed.comm.addressing import get_address_host_port, parse_address
    from distributed.comm.registry import get_backend

    scheme = parse_address(address)[0]
    get_backend(scheme)
    if scheme in ("tcp", "tls", "ws", "wss"):  # over TCP
        socket.create_connection(get_address_host_port(address), timeout=CONNECT_TIMEOUT).close()


def _stop(host: subprocess.Popen) -> None:
    try:
        host.stdin.close()  # the host stops its cluster at end of input
    except OSError:
        pass
    try:
        host.wait(30)
    except subprocess.TimeoutExpired:
        host.kill()
        host.wait()


def _close(client) -> None:
    """Close ``client``; after a lost scheduler its reconnect attempt, cut short here, logs a traceback
    (and a 'failed to reconnect after 30 s' it never waited for): to the debug log."""
    with _quiet("distributed.client", logging.CRITICAL + 1):
        try:
            client.close(timeout=10)
        except Exception:  # a lost scheduler: nothing left to close
            log.debug("closing the Dask client failed", exc_info=True)


@contextmanager
def _quiet(logger: str, below: int):
    """Records of ``logger`` below the level ``below`` go to this module's debug log instead: Dask's
    lines (tracebacks at INFO among them) about a connection it lost, which the ClusterError says in
    one line, would read as a crash under it."""

    def to_debug(record: logging.LogRecord) -> bool:
        if record.levelno >= below:
            return True
        log.debug("%s: %s", record.name, record.getMessage(), exc_info=record.exc_info)
        return False

    logging.getLogger(logger).addFilter(to_debug)
    try:
        yield
    finally:
        logging.getLogger(logger).removeFilter(to_debug)
