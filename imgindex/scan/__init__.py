"""Stage 1, the scan: folders in, rows out.

In: a ``ScanScope`` (folders, flat folders, paths to skip) and the index. Out: rows in
``images``, ``tensors``, ``scan_errors`` and ``scans``, and a ``ScanReport``.

    discover (walk, stat only) -> diff (pure: facts vs rows -> what to do)
        -> reader (hash, decode: file -> tensor, in workers) -> writer (batched transactions)
    run: the loop that drives them, and removes what is gone at the end

Never imports search, actions, watch, report or cli.
"""
