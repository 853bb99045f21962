"""The review app (``imgindex serve``): an index in, a local web page out, to look, decide and act.

In: an index file, and HTTP requests from one browser holding the run's secret token. Out: pages,
JSON and thumbnails read from the index and the originals (by image id: a client never names a
path); decisions and actions go through ``imgindex.api.Index``, as the CLI's do, so the
journal and every re-check apply. ``security`` guards every request; ``params`` checks what a
client sends; ``data`` reads what the page shows; ``jobs`` runs an action in the background;
``app`` routes; ``server`` binds and runs.
"""
