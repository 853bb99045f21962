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
"""

from __future__ import annotations

import importlib
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        for var in _THREAD_VARS:  # one BLAS thread per worker: the pool is the parallelism
            env.setdefault(var, "1")
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
    if initializer:
        _resolve(initializer)(*initargs)
    functions: dict[str, Any] = {}
    while True:
        try:
            ticket, name, args = _read_frame(stdin)
        except EOFError:
            return
        try:
            func = functions.get(name) or functions.setdefault(name, _resolve(name))
            reply = (ticket, True, func(*args))
        except Exception as exc:  # sent back to the caller, who decides
            reply = (ticket, False, exc)
        try:
            _write_frame(stdout, reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            _write_frame(stdout, (ticket, False, RuntimeError(f"{type(exc).__name__}: {exc}")))
