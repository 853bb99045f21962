"""imgindex: find duplicate and similar images in large, growing photo folders, kept in SQLite."""

from imgindex.compare import SearchProgress, SearchReport
from imgindex.dif import Build, Search, build, search
from imgindex.errors import DecodeError, ImgIndexError, IndexOpenError, SchemaTooNewError, SettingsMismatchError
from imgindex.index import Index
from imgindex.indexer import ScanProgress, ScanReport

__all__ = [
    "Build",
    "DecodeError",
    "ImgIndexError",
    "Index",
    "IndexOpenError",
    "ScanProgress",
    "ScanReport",
    "SchemaTooNewError",
    "Search",
    "SearchProgress",
    "SearchReport",
    "SettingsMismatchError",
    "build",
    "search",
]
__version__ = "0.1.0"
