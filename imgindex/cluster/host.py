"""The local cluster of ``--scheduler local``, in a fresh interpreter: ``python -m imgindex.cluster.host``.

Reads its settings (pickled: worker count, TLS security) from stdin, prints the scheduler's
address, and stops the cluster when stdin closes (the command ended, or died). Its workers are
spawned from this process, so they re-import this module, never the user's script.
"""

from __future__ import annotations

import pickle
import signal
import sys


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle; it closes stdin
    settings = pickle.load(sys.stdin.buffer)  # reads the settings' bytes only
    import dask
    from distributed import LocalCluster

    # no HTTP routes (the scheduler's API can retire workers; TLS does not cover it), no dashboard
    dask.config.set({"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": [],
                     # no sampling profiler (a stack every 10 ms) taking the cores the work needs
                     "distributed.worker.profile.enabled": False,
                     # workers forked from a fresh server process: no re-import each (0.3 s of the start)
                     "distributed.worker.multiprocessing-method": "forkserver",
                     # glibc's default heap: a fixed trim threshold also fixes the mmap threshold, so
                     # every large numpy temporary is a fresh mmap and its page faults (bounds 2x slower)
                     "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    try:
        cluster = LocalCluster(n_workers=settings["workers"], threads_per_worker=1, processes=True,
                               host="127.0.0.1", protocol="tls", security=settings["security"],
                               dashboard_address="127.0.0.1:0", scheduler_port=0, silence_logs=50)
    except Exception as exc:
        _tell(f"failed: {type(exc).__name__}: {exc}")
        raise SystemExit(1) from None
    _tell(cluster.scheduler_address)
    try:
        sys.stdin.buffer.read()  # until the command closes its end
    finally:
        cluster.close(timeout=20)


def _tell(line: str) -> None:
    """One line to the command that started this process: its end of the pipe, not a terminal."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
