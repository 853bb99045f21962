"""Pure: one folder's files (from the walk) against its rows in the index -> what to do with each.

No I/O here, so every rule of "what is unchanged" is a unit test away:
- a file whose size and mtime equal its row, made by a recipe its decode uses today, is
  unchanged: never opened;
- a file that failed before, unchanged since, fails again without being opened;
- a file in ``skip_paths`` (still being written) is neither read nor counted;
- every other file is read (a ``ReadTask``, carrying the row it had, if any);
- rows whose file is not in the folder any more are *missing* (maybe moved: the scan decides
  at its end), and error rows of files no longer there are forgotten.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from imgindex.scan.discover import FileFacts


@dataclass(frozen=True)
class Row:
    """What the index holds for a path."""

    image_id: int
    size: int
    mtime_ns: int
    decoder: str


@dataclass(frozen=True)
class ReadTask:
    """A file to hash and (unless its content is known) decode."""

    path: str
    folder: str
    old_id: int | None  # the row this path had, if any
    size: int = 0  # bytes on disk at the walk: how much work reading it will be


@dataclass(frozen=True)
class FolderDiff:
    to_read: tuple[ReadTask, ...]
    seen: int  # files considered (skip_paths excluded)
    unchanged: int
    failed_again: int  # unchanged files that failed before: not opened again
    missing: Mapping[int, str]  # row id -> path, rows whose file is not in the folder
    forget_errors: tuple[str, ...]  # error rows of files no longer in the folder


def diff_folder(
    folder: str,
    files: list[FileFacts],
    rows: Mapping[str, Row],
    failed: Mapping[str, tuple[int, int]],
    *,
    decoders: Callable[[str], Collection[str]],
    skip_paths: frozenset[str] = frozenset(),
) -> FolderDiff:
    """Decide, for every file of ``folder`` and every row under it, what the scan must do;
    ``decoders(path)``: the recipes a decode of that file uses today (``decode.recipes``)."""
    to_read, present = [], set()
    seen = unchanged = failed_again = 0
    for facts in files:
        present.add(facts.path)
        if facts.path in skip_paths:
            continue
        seen += 1
        row = rows.get(facts.path)
        if (row is not None and (row.size, row.mtime_ns) == (facts.size, facts.mtime_ns)
                and row.decoder in decoders(facts.path)):
            unchanged += 1
        elif row is None and failed.get(facts.path) == (facts.size, facts.mtime_ns):
            failed_again += 1
        else:
            to_read.append(ReadTask(facts.path, folder, None if row is None else row.image_id, facts.size))
    missing = {row.image_id: path for path, row in rows.items() if path not in present}
    forget = tuple(path for path in failed if path not in present)
    return FolderDiff(tuple(to_read), seen, unchanged, failed_again, missing, forget)
