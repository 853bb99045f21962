"""Review decisions: paths in, rows of ``decisions`` out.

In: paths (of indexed images) or folders, from the CLI, the API or the review app. Out: checked
decisions keyed by content hash (so renames, moves, byte copies and rescans keep them) in the
``decisions`` table, and a ``DecisionReport``. The comparer, the keeper choice and the actions
read them through ``imgindex.db.decisions``.
"""
