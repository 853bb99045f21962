"""imgindex: find duplicate and similar images in large, growing photo folders, kept in SQLite."""

from imgindex.errors import DecodeError, ImgIndexError, IndexOpenError, SchemaTooNewError, SettingsMismatchError
from imgindex.index import Index
from imgindex.indexer import ScanProgress, ScanReport

__all__ = [
    "DecodeError",
    "ImgIndexError",
    "Index",
    "IndexOpenError",
    "ScanProgress",
    "ScanReport",
    "SchemaTooNewError",
    "SettingsMismatchError",
]
__version__ = "0.1.0"
