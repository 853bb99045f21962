"""imgindex: find duplicate and similar images in large, growing photo folders, kept in SQLite.

Names are imported on first use, so a worker process that needs only the decoder or the
kernel does not pay for the CLI, sqlite-utils or watchdog.
"""

from importlib import import_module

_EXPORTS = {
    "Build": "imgindex.dif",
    "Search": "imgindex.dif",
    "build": "imgindex.dif",
    "search": "imgindex.dif",
    "DecodeError": "imgindex.errors",
    "ImgIndexError": "imgindex.errors",
    "IndexOpenError": "imgindex.errors",
    "SchemaTooNewError": "imgindex.errors",
    "SettingsMismatchError": "imgindex.errors",
    "Index": "imgindex.index",
    "ScanProgress": "imgindex.indexer",
    "ScanReport": "imgindex.indexer",
    "SearchProgress": "imgindex.compare",
    "SearchReport": "imgindex.compare",
    "ActionError": "imgindex.actions",
    "ActionPlan": "imgindex.actions",
    "ActionProgress": "imgindex.actions",
    "ActionReport": "imgindex.actions",
    "ReportProgress": "imgindex.report",
    "ReportSummary": "imgindex.report",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'imgindex' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
