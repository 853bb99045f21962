"""Stage 4, acting on matches: move-to, delete (trash) and undo, journaled.

In: the latest search's groups and a command (``plan``), then an ``ActionPlan`` the user
confirmed (``apply``). Out: files moved, trashed or put back, one ``actions`` row per file
(written before the file is touched), an ``action_runs`` row, and an ``ActionReport``.

    plan (which files, where to) -> apply (re-check each file, then act) -> journal (rows,
    settling what a dead run left) ; fileops: no-clobber moves, verified copies, the trash

Reads the search's results; never imports watch, report or cli.
"""
