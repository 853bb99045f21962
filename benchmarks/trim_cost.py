#!/usr/bin/env python3
"""What looking for borders costs a decode: imgindex's decode with and without ``content_box``.

    python benchmarks/trim_cost.py [--corpus DIR ...] [--repeat 5] [--limit 1000]

One process, files read once beforehand (the disk is not measured), the two decoders alternating
``--repeat`` times on the same files; the medians of the per-file time and the extra share. The
issue's bar (#15): the trimmed tensor costs a scan at most 10% more decoding. Also: how many
files were framed (and so got a second resize), which costs more where borders are common.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from imgindex.scan import decode

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
DEFAULT = [CORPORA / "real-photos", Path("/tmp/imgindex-bench/corpus-1024/1000")]
EXTENSIONS = {".jpg", ".jpeg", ".png"}


def files(folders: list[Path], limit: int) -> list[str]:
    found = [str(p) for f in folders if f.is_dir() for p in sorted(f.rglob("*")) if p.suffix.lower() in EXTENSIONS]
    if not found:
        sys.exit("no JPEG or PNG files in " + ", ".join(map(str, folders)))
    return found[:limit]


def timed(paths: list[str], px: int) -> tuple[float, int]:
    """Seconds per file of decoding all ``paths`` here, and how many were framed."""
    start = time.perf_counter()
    framed = sum(decode.decode_path(p, px).trimmed is not None for p in paths)
    return (time.perf_counter() - start) / len(paths), framed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, nargs="+", default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--px-size", type=int, default=50)
    args = parser.parse_args()
    paths = files(args.corpus, args.limit)
    for p in paths:  # into the page cache
        Path(p).read_bytes()
    looking = decode.content_box
    with_trim, without = [], []
    for _ in range(args.repeat):
        decode.content_box = looking
        seconds, framed = timed(paths, args.px_size)
        with_trim.append(seconds)
        decode.content_box = lambda im, box=None: None
        without.append(timed(paths, args.px_size)[0])
    decode.content_box = looking
    a, b = statistics.median(with_trim), statistics.median(without)
    print(f"{len(paths)} files ({framed} framed): {b * 1e3:.2f} ms a file without looking for borders, "
          f"{a * 1e3:.2f} ms with: +{(a / b - 1) * 100:.1f}% (medians of {args.repeat}, one process)")


if __name__ == "__main__":
    main()
