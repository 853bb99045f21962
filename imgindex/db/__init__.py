"""The SQLite index: open it (PRAGMAs, migrations), the queries stages share, run rows.

In: a database path. Out: a sqlite-utils ``Database`` for the one writer, read-only
``sqlite3`` connections for workers, and shared lookups (settings, tensors, latest search).
Every other stage reaches SQLite through what is here or through its own SQL on that handle.
"""
