"""Stage 5, the watcher: file events in, the same scan and search, incrementally.

In: watchdog events under the roots (or polling where inotify runs out). Out: batches driven
through the ``Index`` facade (a scan of just the touched folders, then an incremental search),
a ``BatchReport`` per batch, and the ``watcher`` row (the lock and heartbeat).

    settle (pure: events + time -> batches) ; lock (one watcher per index)
    watcher: the observer, the loop, catching up when the OS drops events

Uses only the facade for scanning and searching; never imports cli or report.
"""
