"""Walk roots and yield, folder by folder, the facts of the files found. Only stat calls here.

Policy (documented in README):
- Symlinks (to files or folders) are not followed and not indexed: they are reported as
  skipped. A link is not a second copy of a picture, and acting on one as a "duplicate" could
  remove the only real file. This also makes symlink loops impossible.
- Hidden files and folders are walked like any other.
- A folder that cannot be listed is reported, and nothing under it is treated as gone.
- Names that are not valid UTF-8 cannot be stored as text: they are skipped with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from imgindex.errors import ScanRootError
from imgindex.scan.formats import image_extensions, skipped_kind
from imgindex.types import SkippedFile


@dataclass(frozen=True, slots=True)  # one per file walked: hundreds of thousands at a time
class FileFacts:
    """A regular file found by the walk, with the stat facts that decide whether to re-read it."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FolderListing:
    """One folder's direct content. ``error`` is set when the folder could not be listed."""

    folder: str
    files: list[FileFacts] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)  # links, special files...: counted, never read
    error: str | None = None


def normalise_root(root: str | os.PathLike) -> str:
    """Absolute, normalised path of an existing folder, or ScanRootError saying what is wrong."""
    path = os.path.abspath(os.fspath(root))
    if not os.path.exists(path):
        raise ScanRootError(f"{path} does not exist: check the path (is the drive mounted?).")
    if not os.path.isdir(path):
        raise ScanRootError(f"{path} is not a folder: give the folder that holds the pictures.")
    return path


def walk(
    roots: Iterable[str],
    *,
    recursive: bool = True,
    limit_extensions: bool = True,
    flat_roots: frozenset[str] = frozenset(),
) -> Iterator[FolderListing]:
    """Yield a FolderListing per folder, roots in the order given, entries sorted by name.

    A folder reached twice (overlapping roots, bind mounts) is listed once; ``flat_roots`` are
    listed without their subfolders even when ``recursive``. A folder that does not exist
    (any more) yields nothing.
    """
    extensions = image_extensions() if limit_extensions else None
    for folder, entries, error in _folders(roots, recursive, flat_roots):
        if error is not None:
            yield FolderListing(folder=folder, error=error)
        else:
            yield _listing(folder, entries, extensions)


def count_files(roots: Iterable[str], *, recursive: bool = True, limit_extensions: bool = True) -> int:
    """How many files ``walk`` will yield, without stat calls: the total behind a progress ETA."""
    extensions = image_extensions() if limit_extensions else None
    return sum(
        1
        for _folder, entries, _error in _folders(roots, recursive, frozenset())
        for entry in entries
        if _kind(entry, extensions) == "file"
    )


def _folders(
    roots: Iterable[str], recursive: bool, flat_roots: frozenset[str]
) -> Iterator[tuple[str, list[os.DirEntry], str | None]]:
    """Depth-first over real folders (no symlinks), each once, entries sorted by name."""
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        stack = [root]
        deep = recursive and root not in flat_roots
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder, follow_symlinks=False)
                if (st.st_dev, st.st_ino) in seen_dirs:
                    continue
                seen_dirs.add((st.st_dev, st.st_ino))
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone: whatever the index holds below it is gone too
            except OSError as exc:
                yield folder, [], f"cannot list this folder: {exc.strerror or exc}"
                continue
            yield folder, entries, None
            if deep:
                stack.extend(reversed([e.path for e in entries if _is_folder(e)]))


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False) and _is_utf8(entry.name)
    except OSError:
        return False


def _kind(entry: os.DirEntry, extensions: frozenset[str] | None) -> str:
    """What the walk makes of an entry: file, folder, or the reason it is skipped."""
    try:
        if not _is_utf8(entry.name):
            return "name is not valid UTF-8"
        if entry.is_symlink():
            return "symlink (not followed)"
        if entry.is_dir(follow_symlinks=False):
            return "folder"
        if not entry.is_file(follow_symlinks=False):
            return "not a regular file"
        if extensions is not None and os.path.splitext(entry.name)[1].lower() not in extensions:
            return skipped_kind(entry.name)
        return "file"
    except OSError as exc:
        return f"cannot stat: {exc.strerror or exc}"


def _listing(folder: str, entries: list[os.DirEntry], extensions) -> FolderListing:
    listing = FolderListing(folder=folder)
    for entry in entries:
        kind = _kind(entry, extensions)
        if kind == "folder":
            continue
        if kind != "file":
            listing.skipped.append(SkippedFile(_printable(entry.path), kind))
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # deleted while we looked: it was never there for this scan
        except OSError as exc:
            listing.skipped.append(SkippedFile(entry.path, f"cannot stat: {exc.strerror or exc}"))
            continue
        listing.files.append(FileFacts(entry.path, st.st_size, st.st_mtime_ns))
    return listing


def under(folder: str, root: str) -> bool:
    """True when ``folder`` is ``root`` or inside it (string-wise, both normalised)."""
    return folder == root or folder.startswith(root if root.endswith(os.sep) else root + os.sep)


def _is_utf8(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _printable(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")
