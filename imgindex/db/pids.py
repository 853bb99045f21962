"""Is the process that holds a lock row (watcher, action run) still alive? Pids get reused, so check its start."""

from __future__ import annotations

import os


def process_start(pid: int) -> str | None:
    """When the process started (Linux), so a reused pid is not taken for the lock holder."""
    try:
        with open(f"/proc/{pid}/stat") as fp:
            return fp.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid: int, started: str | None) -> bool:
    """True when ``pid`` runs and (where the start time is known) is the same process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    return started is None or process_start(pid) in (None, started)
