"""Stage 2, the comparer (``imgindex search``): stored tensors in, matching pairs and groups out.

In: the index's tensors (and their cached search keys) and a search's settings. Out: rows in
``searches``, ``pairs`` and ``group_members`` (the ``match_pairs``/``match_groups`` views), a
``SearchReport``, and results read back in difPy's shapes.

    settings (presets, the base of an incremental search) -> plan (buckets, chunks, pruning)
        -> execute (kernel on chunk pairs, here or in workers) -> persist (pairs, groups)
    kernel: pure numpy distances; groups: components and keepers; results: reading back
    run: the search, and near_pairs (a wider look that writes nothing)

Reads tensors written by the scan; never imports actions, watch, report or cli.
"""
