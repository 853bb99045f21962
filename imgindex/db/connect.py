"""Open the SQLite index: PRAGMAs and migrations (applied on open), or a read-only connection for workers.

One writer (a scan, later the watcher) and any number of readers: WAL mode lets a user's
``sqlite3`` shell or a report query while a scan writes, and ``busy_timeout`` makes a second
writer wait instead of failing at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from imgindex.errors import DiskFullError, IndexOpenError, SchemaTooNewError

if TYPE_CHECKING:
    from sqlite_utils import Database

BUSY_TIMEOUT_MS = 30_000
CACHE_KB = 65_536
PAGE_SIZE = 16_384  # 7.5 KB tensors: fewer overflow pages, faster streaming


def connect(path: str | os.PathLike) -> Database:
    """Open (creating if needed) and upgrade the index at ``path``; raises IndexOpenError."""
    # imported here: worker processes only read (connect_readonly) and never load sqlite-utils
    from sqlite_utils import Database

    MIGRATIONS = migrations()
    path = Path(path)
    if path.is_dir():
        raise IndexOpenError(f"{path} is a folder; --db needs a database file path.")
    if path.parent and not path.parent.exists():
        raise IndexOpenError(f"The folder {path.parent} does not exist; create it or choose another --db.")
    is_new = not path.exists() or path.stat().st_size == 0
    if not is_new and not os.access(path, os.W_OK):
        raise IndexOpenError(f"{path} is read-only, and imgindex writes to its index (even to read it, SQLite's WAL"
                             " needs writing): make it writable (chmod u+w), or copy it somewhere writable.")
    if not is_new and not os.access(path.parent, os.W_OK | os.X_OK):
        raise IndexOpenError(f"The folder {path.parent} is read-only, and SQLite writes its WAL beside the index:"
                             " make the folder writable, or copy the index somewhere writable.")
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        if is_new:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # 64 MB of page cache (SQLite's default is 2 MB): writing a million pairs' index entries
        # took 28 s with the default and 8.6 s with this (benchmarks/million.py, PairWriter)
        conn.execute(f"PRAGMA cache_size=-{CACHE_KB}")
        # no mmap_size: a 1 GB map read no faster at a million images (benchmarks/sqlite_settings.py)
        db = Database(conn, execute_plugins=False)
        _refuse_future_schema(db, path, MIGRATIONS)
        MIGRATIONS.apply(db)
    except sqlite3.DatabaseError as exc:
        if "full" in str(exc) or _no_room(path):  # a full disk can also show as "disk I/O error" (no -shm file)
            raise DiskFullError(path) from exc
        raise IndexOpenError(
            f"{path} is not a usable imgindex database ({exc}). "
            "If it is corrupt, move it aside and scan again into a new --db."
        ) from exc
    return db


def _no_room(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < (1 << 20)
    except OSError:
        return False


def connect_readonly(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection, for worker processes; never writes, never migrates."""
    uri = f"file:{quote(os.fspath(Path(path).resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def _refuse_future_schema(db: Database, path: Path, migrations) -> None:
    known = {m.name for m in migrations._migrations}
    applied = {m.name for m in migrations.applied(db)}
    unknown = sorted(applied - known)
    if unknown:
        raise SchemaTooNewError(
            f"{path} was written by a newer imgindex (schema steps {', '.join(unknown)} are "
            "unknown to this version). Upgrade imgindex (pip install -U imgindex) to use it."
        )


def migrations():
    """The schema steps (imgindex.migrations), also when running from a checkout.

    A checkout's imgindex/ folder, first on sys.path when a command runs from the repository,
    shadows the installed package and lacks the schema, which lives in the top-level
    migrations/ folder: load it from there.
    """
    try:
        return importlib.import_module("imgindex.migrations").MIGRATIONS
    except ModuleNotFoundError as exc:
        if exc.name != "imgindex.migrations":
            raise
    folder = Path(__file__).resolve().parents[2] / "migrations"
    spec = importlib.util.spec_from_file_location("imgindex.migrations", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    if spec is None or not (folder / "__init__.py").is_file():
        raise IndexOpenError("This imgindex installation lacks its schema (imgindex.migrations): reinstall it.")
    module = importlib.util.module_from_spec(spec)
    sys.modules["imgindex.migrations"] = module
    spec.loader.exec_module(module)
    sys.modules["imgindex"].migrations = module  # as the import system binds a submodule
    return module.MIGRATIONS


def abandon_transaction(db: Database) -> None:
    """Roll back a transaction an interrupt left open.

    Ctrl-C can land between ``BEGIN`` and the block that owns it (inside sqlite-utils'
    ``atomic``), leaving the transaction open: every later ``atomic`` would then nest in it as a
    savepoint and never commit. Called before an interrupted run records how it ended.
    """
    if db.conn.in_transaction:
        db.conn.execute("ROLLBACK")


@contextmanager
def write_transaction(db: Database):
    """A transaction that takes the write lock first (BEGIN IMMEDIATE), waiting up to the busy
    timeout for another writer; inside one already, a no-op (``db.atomic()`` nests as savepoints).

    For work that reads, then writes: a plain BEGIN would read first and then fail at once with
    "database is locked" when another writer holds the lock (SQLite cannot wait there without
    risking a deadlock), so a decision made while a scan writes would fail instead of waiting.
    """
    if db.conn.in_transaction:
        yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
