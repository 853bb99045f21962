"""Worker processes that run imgindex functions, and never the user's script.

``multiprocessing`` with spawn or forkserver re-imports the caller's ``__main__`` in every worker:
a script without an ``if __name__ == "__main__":`` guard starts its work again in each child and
crashes (difPy's macOS/Windows crash), and a script read from stdin cannot start workers at all.
``fork`` would avoid that, but forking a process that runs threads (the watcher's observer) can
deadlock. So workers here are fresh interpreters (``python -m imgindex._worker_main``): they
import imgindex and nothing of the caller, share no SQLite connection with anyone, and speak
pickled frames over their stdin/stdout.

A worker that dies (killed by the OOM killer, or a decoder crash) fails only its own calls with
``WorkerDied``; the pool starts a replacement.

``BatchRunner`` is the one way stages fan work out: items go in, (item, result) pairs come out;
small jobs run in this process (starting workers costs ~0.3 s), large ones in a ``WorkerPool``.
An initializer's return value is the *context* a worker passes to every call (a read-only
connection, a cache); in this process the caller's own context takes its place.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from imgindex.errors import ImgIndexError

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


class WorkerDied(Exception):
    """The process running a call exited before answering it."""


@dataclass(frozen=True)
class Outcome:
    """The answer to one submitted call: ``value``, or ``error`` if the call raised or its worker died."""

    ticket: int
    value: Any = None
    error: BaseException | None = None


def resolve_processes(processes: int | None) -> int:
    """The CPU count for None; a clear error for anything but a whole number >= 1."""
    if processes is None:
        return os.cpu_count() or 1
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise ImgIndexError(f"processes must be a whole number >= 1 (got {processes!r}).")
    return processes


def fresh_interpreter_env() -> dict[str, str]:
    """The environment of an imgindex process started here: this imgindex importable, one BLAS
    thread (the processes are the parallelism)."""
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    for var in _THREAD_VARS:
        env.setdefault(var, "1")
    return env


def _write_frame(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_frame(stream):
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def _resolve(name: str):
    module, _, func = name.partition(":")
    return getattr(importlib.import_module(module), func)


class _Worker:
    def __init__(self, index: int, initializer: str | None, initargs: tuple, answers: queue.Queue):
        env = fresh_interpreter_env()
        self.index = index
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imgindex._worker_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.in_flight: set[int] = set()
        _write_frame(self.proc.stdin, (initializer, initargs))
        self.reader = threading.Thread(target=self._read, args=(answers,), daemon=True)
        self.reader.start()

    def _read(self, answers: queue.Queue) -> None:
        try:
            while True:
                answers.put((self.index, _read_frame(self.proc.stdout)))
        except (EOFError, OSError, pickle.UnpicklingError):
            answers.put((self.index, None))  # this worker is gone

    def send(self, ticket: int, func: str, args: tuple) -> None:
        self.in_flight.add(ticket)
        try:
            _write_frame(self.proc.stdin, (ticket, func, args))
        except (BrokenPipeError, OSError):
            pass  # the reader thread reports the death; the ticket fails then

    def close_input(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        self.close_input()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class WorkerPool:
    """``processes`` workers; ``submit`` a call by name, collect ``Outcome``s as they arrive.

    With an ``initializer``, each worker calls it once and passes what it returned as the first
    argument of every call.

    At most ``depth`` calls wait at each worker, so callers that keep ``can_submit()`` true
    bound both the work in flight and the memory of results not yet collected.
    """

    def __init__(self, processes: int, *, initializer: str | None = None, initargs: tuple = (), depth: int = 2):
        self.initializer = initializer
        self.initargs = initargs
        self.depth = depth
        self.answers: queue.Queue = queue.Queue()
        self.workers = [_Worker(i, initializer, initargs, self.answers) for i in range(processes)]
        self.next_ticket = 0

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pending(self) -> int:
        return sum(len(w.in_flight) for w in self.workers)

    def can_submit(self) -> bool:
        return any(len(w.in_flight) < self.depth for w in self.workers)

    def submit(self, func: str, *args) -> int:
        """Queue ``module:function(*args)`` on the least busy worker; returns its ticket."""
        worker = min(self.workers, key=lambda w: len(w.in_flight))
        ticket = self.next_ticket
        self.next_ticket += 1
        worker.send(ticket, func, args)
        return ticket

    def collect(self, *, block: bool = True) -> Iterator[Outcome]:
        """Outcomes available now (waiting for at least one when ``block`` and work is pending)."""
        while self.pending:
            try:
                index, message = self.answers.get(block=block)
            except queue.Empty:
                return
            block = False
            worker = self.workers[index]
            if message is None:
                yield from self._replace(worker)
                continue
            ticket, ok, payload = message
            worker.in_flight.discard(ticket)
            yield Outcome(ticket, value=payload) if ok else Outcome(ticket, error=payload)

    def _replace(self, dead: _Worker) -> Iterator[Outcome]:
        dead.stop(timeout=1)
        code = dead.proc.returncode
        for ticket in sorted(dead.in_flight):
            yield Outcome(ticket, error=WorkerDied(f"worker process exited with code {code}"))
        self.workers[dead.index] = _Worker(dead.index, self.initializer, self.initargs, self.answers)

    def close(self) -> None:
        for worker in self.workers:  # every worker sees end-of-input at once, then all are awaited
            worker.close_input()
        for worker in self.workers:
            worker.stop()
        self.workers = []


def serve() -> None:
    """The worker's loop: initialise, then answer calls until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    initializer, initargs = _read_frame(stdin)
    context = (_resolve(initializer)(*initargs),) if initializer else ()
    functions: dict[str, Any] = {}
    while True:
        try:
            ticket, name, args = _read_frame(stdin)
        except EOFError:
            return
        try:
            func = functions.get(name) or functions.setdefault(name, _resolve(name))
            reply = (ticket, True, func(*context, *args))
        except Exception as exc:  # sent back to the caller, who decides
            reply = (ticket, False, exc)
        try:
            _write_frame(stdout, reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            _write_frame(stdout, (ticket, False, RuntimeError(f"{type(exc).__name__}: {exc}")))


def function_name(func: Callable) -> str:
    """'module:qualname', the name a worker resolves a function by."""
    return f"{func.__module__}:{func.__qualname__}"


@dataclass
class _Item:
    value: Any
    work: int
    suspect: bool = False  # its batch lost its worker: run it alone


class BatchRunner:
    """Run ``func`` over items: here while the queued work is below ``fan_out_at``, else in workers.

    ``func(batch, *args)`` (or ``func(context, batch, *args)`` with a context) returns one result
    per item of ``batch``. Items are sent in batches of about ``batch_work`` work; at most a
    couple of batches wait at each worker, so the work in flight stays bounded. With
    ``processes == 1`` every item runs here, as soon as ``ready()`` is called.

    A batch whose worker died is retried item by item; an item that kills a worker on its own
    gets ``on_crash(item)`` as its result, or raises ``WorkerDied`` without ``on_crash``.
    """

    def __init__(self, func: Callable, *, processes: int, args: tuple = (), context: Any = None,
                 initializer: Callable | None = None, initargs: tuple = (), batch_work: int = 1,
                 fan_out_at: int = 1, on_crash: Callable[[Any], Any] | None = None):
        self.func, self.name, self.args = func, function_name(func), args
        self.processes = processes
        self.context = () if initializer is None else (context,)
        self.initializer = None if initializer is None else function_name(initializer)
        self.initargs = initargs
        self.batch_work, self.fan_out_at, self.on_crash = batch_work, fan_out_at, on_crash
        self.queue: deque[_Item] = deque()
        self.queued_work = 0
        self.pool: WorkerPool | None = None
        self.batches: dict[int, list[_Item]] = {}
        self.workers_started = 0

    def __enter__(self) -> BatchRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, item: Any, work: int = 1) -> None:
        self.queue.append(_Item(item, work))
        self.queued_work += work

    def ready(self) -> Iterator[tuple[Any, Any]]:
        """Results available now; blocks only to keep the work in flight bounded."""
        self._maybe_start()
        if self.pool is None:
            if self.processes == 1:
                yield from self._inline()
            return
        self._fill(partial=False)
        yield from self._collect(block=not self.pool.can_submit())

    def finish(self) -> Iterator[tuple[Any, Any]]:
        """Every remaining result."""
        self._maybe_start()
        if self.pool is None:
            yield from self._inline()
            return
        while self.queue or self.batches:
            self._fill()
            yield from self._collect(block=True)

    def map(self, items: Iterator[tuple[Any, int]]) -> Iterator[tuple[Any, Any]]:
        """Submit every (item, work), then yield every (item, result); the workers stop at the end."""
        with self:
            for item, work in items:
                self.submit(item, work)
            yield from self.finish()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def _maybe_start(self) -> None:
        if self.pool is None and self.processes > 1 and self.queued_work >= self.fan_out_at and len(self.queue) > 1:
            self.pool = WorkerPool(self.processes, initializer=self.initializer, initargs=self.initargs)
            self.workers_started = self.processes

    def _inline(self) -> Iterator[tuple[Any, Any]]:
        while self.queue:
            item = self.queue.popleft()
            self.queued_work -= item.work
            (result,) = self.func(*self.context, [item.value], *self.args)
            yield item.value, result

    def _fill(self, partial: bool = True) -> None:
        """Send batches while the workers have room. Not ``partial``: while items are still coming,
        send only full batches, unless the workers have nothing to do (a batch of one file each
        cost a round trip and a call each: 968 of 972 batches of a 1,000-file scan were so)."""
        while self.queue and self.pool.can_submit():
            if not partial and self.queued_work < self.batch_work and self.batches:
                return
            batch, work = [], 0
            while self.queue and (not batch or (work < self.batch_work and not self.queue[0].suspect)):
                item = self.queue.popleft()
                batch.append(item)
                work += item.work
                self.queued_work -= item.work
                if item.suspect:
                    break
            self.batches[self.pool.submit(self.name, [i.value for i in batch], *self.args)] = batch

    def _collect(self, block: bool) -> Iterator[tuple[Any, Any]]:
        for outcome in self.pool.collect(block=block):
            batch = self.batches.pop(outcome.ticket)
            if outcome.error is None:
                yield from zip((i.value for i in batch), outcome.value)
            elif not isinstance(outcome.error, WorkerDied) or self.on_crash is None:
                raise outcome.error
            elif len(batch) == 1 and batch[0].suspect:
                yield batch[0].value, self.on_crash(batch[0].value)
            else:
                log.warning("a worker process died; retrying its %d items one by one", len(batch))
                for item in reversed(batch):
                    item.suspect = True
                    self.queue.appendleft(item)
                    self.queued_work += item.work
