"""The exceptions imgindex raises. The CLI turns every one of them into a message, never a traceback."""

from __future__ import annotations


class ImgIndexError(Exception):
    """Base class: something the user can act on; ``str()`` says what and what to do."""


class IndexOpenError(ImgIndexError):
    """The database file cannot be used (corrupt, not SQLite, unwritable)."""


class ScratchFullError(ImgIndexError):
    """The disk holding a search's scratch folder (the system's temporary folder) is full."""

    def __init__(self, folder):
        super().__init__(f"The disk holding the search's scratch folder {folder} is full: free some space there, or"
                         " point TMPDIR at a disk with room, and run the same command again (nothing was lost).")


class DiskFullError(ImgIndexError):
    """The disk (or quota) holding the index is full (SQLITE_FULL)."""

    def __init__(self, path=None):
        where = f"holding {path} " if path else "holding the index "
        super().__init__(f"The disk {where}is full: free some space and run the same command again (everything"
                         " written before is kept; nothing was lost).")


class SchemaTooNewError(IndexOpenError):
    """The database was written by a newer imgindex than this one."""


class SettingsMismatchError(ImgIndexError):
    """A scan asks for settings (px_size) that differ from the ones the index was built with."""


class ScanRootError(ImgIndexError):
    """A folder given to scan does not exist or is not a folder."""


class DecodeError(ImgIndexError):
    """A file could not be turned into a tensor. ``error_class`` is a short stable label."""

    def __init__(self, path: str, error_class: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.error_class = error_class
        self.reason = reason

    def __reduce__(self):  # travel between processes intact
        return (type(self), (self.path, self.error_class, self.reason))


class ActionError(ImgIndexError):
    """An action command cannot start (bad DEST, another run in progress, nothing to undo...)."""


class WatchLockError(ImgIndexError):
    """Another watcher is running on this index."""


class DecisionError(ImgIndexError):
    """A review decision cannot be recorded (a path not in the index, a bad reference folder...)."""
