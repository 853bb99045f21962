"""Stage 1, the scan: folders in, rows out.

In: a ``ScanScope`` (folders, flat folders, paths to skip) and the index. Out: rows in
``images``, ``tensors`` (with ``trimmed_tensors`` and the search keys), ``scan_errors`` and
``scans``, and a ``ScanReport``.

    discover (walk, stat only) -> diff (pure: facts vs rows -> what to do)
        -> reader (hash, decode: file -> tensor and its search keys, in workers)
        -> writer (batched transactions)
    run: the loop that drives them, and removes what is gone at the end

Never imports search, actions, watch, report or cli; of the comparer, only ``compare.keys`` (pure
numpy: a tensor's search keys, made beside the decode) and ``compare.points`` (a new image's place
in the kept point index, written with its row).
"""
