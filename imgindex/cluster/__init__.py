"""Scans and searches on a Dask cluster, the index still one SQLite file written by this process.

Flows in: a scheduler (an address, ``local``, or a ``distributed.Client``) and the same work the
local worker pool takes: a scan's files to read, a search's planned tasks. Flows out: the same
results, in the same order of writing, so everything after them (the index writer, the pair
writer, the groups) is the code of the local path.

- ``connect``: the scheduler a command runs on, and the local cluster of ``--scheduler local``.
- ``host``: that local cluster, run in a fresh interpreter (never the caller's ``__main__``).
- ``calls``: submit calls, a bounded number in flight; faults and Ctrl-C handled in one place.
- ``decode``: the scan's files read by the workers, by path.
- ``compare``: the search's tasks, their keys read here once and sent; the exact checks' tensors
  read here for the candidates only. Workers never open the SQLite file.
"""
