"""imgindex: find duplicate and similar images in large, growing photo folders, kept in SQLite.

The public API: ``Index`` (the facade over one index file), difPy's ``build``/``search``, the
reports they return and the errors they raise. Names are imported on first use, so a worker
process that needs only the decoder or the kernel does not pay for the CLI or sqlite-utils.
"""

from importlib import import_module

_EXPORTS = {
    "Build": "imgindex.compat.difpy",
    "Search": "imgindex.compat.difpy",
    "build": "imgindex.compat.difpy",
    "search": "imgindex.compat.difpy",
    "DecodeError": "imgindex.errors",
    "ImgIndexError": "imgindex.errors",
    "IndexOpenError": "imgindex.errors",
    "SchemaTooNewError": "imgindex.errors",
    "SettingsMismatchError": "imgindex.errors",
    "Index": "imgindex.api",
    "ScanProgress": "imgindex.types",
    "ScanReport": "imgindex.types",
    "ScanScope": "imgindex.types",
    "ScanTimings": "imgindex.types",
    "SearchProgress": "imgindex.types",
    "SearchReport": "imgindex.types",
    "SearchTimings": "imgindex.types",
    "ActionError": "imgindex.errors",
    "ActionPlan": "imgindex.types",
    "ActionProgress": "imgindex.types",
    "ActionReport": "imgindex.types",
    "ReportProgress": "imgindex.types",
    "ReportSummary": "imgindex.types",
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
