"""Render progress callbacks as one line on a terminal: used by the CLI and by show_progress=True.

Library code reports progress through callbacks and never writes to the terminal; these
renderers are the one place that does, for the callers that asked for it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from imgindex.humanize import clock
from imgindex.types import ActionProgress, RefreshProgress, ScanProgress, SearchProgress


class ProgressLine:
    """Redraws one status line on ``stream`` (stderr), at most ten times a second."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.last = 0.0
        self.width = 0

    def __call__(self, p: ScanProgress | SearchProgress | ActionProgress) -> None:
        now = time.monotonic()
        final = isinstance(p, SearchProgress) and p.done == p.total
        if now - self.last < 0.1 and not final:
            return
        self.last = now
        if isinstance(p, ScanProgress):
            line = scan_line(p)
        elif isinstance(p, SearchProgress):
            line = search_line(p)
        elif isinstance(p, ActionProgress):
            line = action_line(p)
        elif isinstance(p, RefreshProgress):
            line = f"Looking for borders: {p.done:,}/{p.total:,} images"
        else:
            line = f"Report: {p.stage} {p.done:,}/{p.total:,}"
        line = line[: _columns(self.stream) - 1]
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def clear(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def scan_line(p: ScanProgress) -> str:
    rate = (p.decoded + p.failed) / p.elapsed if p.elapsed > 0 else 0.0
    parts = [f"{p.seen:,}" + (f"/{p.total:,}" if p.total else "") + " files"]
    parts += [f"{p.decoded:,} decoded", f"{p.unchanged:,} unchanged", f"{p.skipped:,} skipped", f"{p.failed:,} failed"]
    parts.append(f"{rate:,.0f}/s")
    if p.total and p.seen and p.total >= p.seen:
        parts.append("ETA " + clock((p.total - p.seen) * p.elapsed / p.seen))
    return "Scanning: " + " | ".join(parts)


def search_line(p: SearchProgress) -> str:
    parts = [f"{p.done:,}/{p.total:,} blocks", f"{p.pairs:,} pairs"]
    if p.done and p.total >= p.done:
        parts.append("ETA " + clock((p.total - p.done) * p.elapsed / p.done))
    return "Searching: " + " | ".join(parts)


def action_line(p: ActionProgress) -> str:
    parts = [f"{p.done:,}/{p.total:,} files", f"{p.bytes_done / 1e6:,.1f}/{p.bytes_total / 1e6:,.1f} MB"]
    if p.done and p.total >= p.done:
        parts.append("ETA " + clock((p.total - p.done) * p.elapsed / p.done))
    return "Acting: " + " | ".join(parts)


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 100
