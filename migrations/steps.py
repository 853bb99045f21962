"""Schema steps, oldest first. Names are recorded in ``_sqlite_migrations``: never rename one."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("imgindex")


@MIGRATIONS(name="0001_index")
def index_tables(db: Database) -> None:
    """Images, their tensors, scan runs and decode errors."""
    db.executescript(
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        -- AUTOINCREMENT: ids are never reused, so "ids above N" means "indexed after N",
        -- which the comparer uses to search only what is new.
        CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            path TEXT NOT NULL UNIQUE,
            folder TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            format TEXT,
            content_hash TEXT NOT NULL,
            px_size INTEGER NOT NULL,
            decoder TEXT NOT NULL,
            indexed_at TEXT NOT NULL
        );
        CREATE TABLE tensors (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            px_size INTEGER NOT NULL,
            tensor BLOB NOT NULL
        );
        CREATE TABLE scans (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            roots TEXT NOT NULL,
            options TEXT NOT NULL,
            seen INTEGER NOT NULL DEFAULT 0,
            added INTEGER NOT NULL DEFAULT 0,
            updated INTEGER NOT NULL DEFAULT 0,
            moved INTEGER NOT NULL DEFAULT 0,
            unchanged INTEGER NOT NULL DEFAULT 0,
            removed INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            decoded INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE scan_errors (
            path TEXT PRIMARY KEY,
            folder TEXT NOT NULL,
            error_class TEXT NOT NULL,
            message TEXT NOT NULL,
            at TEXT NOT NULL,
            size INTEGER,
            mtime_ns INTEGER,
            scan_id INTEGER REFERENCES scans(id)
        );
        """
    )


@MIGRATIONS(name="0002_lookups_and_views")
def lookups_and_views(db: Database) -> None:
    """Indexes the incremental scan needs, and the public ``vectors`` view."""
    db.executescript(
        """
        CREATE INDEX images_folder ON images(folder);
        CREATE INDEX images_content_hash ON images(content_hash);
        CREATE INDEX scan_errors_folder ON scan_errors(folder);
        CREATE VIEW vectors AS
            SELECT image_id, px_size, tensor FROM tensors;
        """
    )
