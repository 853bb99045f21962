"""Numbers as people read them: byte sizes and durations, for the CLI and the report."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """1,234 B, 56.7 KB, 8.9 MB, 1,234.5 GB (powers of 1000, as file managers show them)."""
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"


def clock(seconds: float) -> str:
    """H:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
