"""Stage 2, the comparer (``imgindex search``): stored tensors in, matching pairs and groups out.

In: the index's tensors (and their cached search keys) and a search's settings. Out: rows in
``searches``, ``pair_rows`` and ``group_rows`` (shared by the searches of a chain; the ``pairs``
and ``group_members`` views, and ``match_pairs``/``match_groups``), a ``SearchReport``, and
results read back in difPy's shapes.

    settings (presets, the base of an incremental search) -> plan (buckets, chunks, pruning;
        space and nearby: the range search; points and few: a few new images via the kept grid)
        -> execute (kernel on candidate pairs, here or in workers)
        -> persist (the rows a search writes) / update (an incremental search's groups)
    kernel: pure numpy distances; groups: components and keepers; results: reading back
    run: the search, and near_pairs (a wider look that writes nothing)

Reads tensors written by the scan; never imports actions, watch, report or cli.
"""
