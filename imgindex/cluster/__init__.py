"""A Dask cluster as the second executor beside the local worker pool (``imgindex.workers``), the
index still one SQLite file written only by this process.

Flows in: a scheduler (an address, ``local``, or a ``distributed.Client``), then calls of
imgindex functions with their data. Flows out: their results, as they finish (in no fixed order,
as from the local pool: image ids follow the order results are written in, on either executor). What a stage sends
is the stage's own business: ``scan.on_cluster`` (files read by path on the workers) and
``compare.on_cluster`` (a search's tasks with their keys and tensors); the writers after them are
the local path's.

- ``connect``: the scheduler a command runs on, and the local cluster of ``--scheduler local``.
- ``host``: that local cluster, run in a fresh interpreter (never the caller's ``__main__``).
- ``calls``: submit calls, a bounded number in flight; faults and Ctrl-C handled in one place.
"""
