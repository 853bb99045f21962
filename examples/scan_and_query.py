#!/usr/bin/env python3
"""Use imgindex from Python: scan a folder, then ask the index questions in SQL and numpy.

    python examples/scan_and_query.py PHOTO_DIR [--db photos.db]

Run it twice: the second scan only stats the files and finishes in a blink.
"""

from __future__ import annotations

import argparse

import numpy as np

import imgindex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--db", default="photos.db")
    args = parser.parse_args()

    with imgindex.Index(args.db) as index:
        report = index.scan([args.folder], processes=2)
        print(f"scan {report.scan_id}: {report.added} new, {report.unchanged} unchanged, "
              f"{report.moved} moved, {report.removed} removed, {report.failed} failed "
              f"in {report.duration:.2f} s")

        print("\nImages per folder:")
        for folder, n in index.db.execute("SELECT folder, count(*) FROM images GROUP BY folder ORDER BY folder"):
            print(f"  {n:5d}  {folder}")

        print("\nByte-identical files (same content_hash):")
        for digest, paths in index.db.execute(
            "SELECT content_hash, group_concat(path, ' = ') FROM images GROUP BY content_hash HAVING count(*) > 1"
        ):
            print(f"  {digest[:12]}  {paths}")

        print("\nFiles that could not be read:")
        for path, error_class, message in index.db.execute("SELECT path, error_class, message FROM scan_errors"):
            print(f"  [{error_class}] {path}: {message}")

        # The stored tensors stream as numpy arrays, chunk by chunk.
        brightest = (None, -1.0)
        for chunk in index.vectors(chunk_size=1000):
            means = chunk.tensors.reshape(len(chunk.ids), -1).mean(axis=1)
            best = int(np.argmax(means))
            if means[best] > brightest[1]:
                brightest = (int(chunk.ids[best]), float(means[best]))
        if brightest[0] is not None:
            path = index.db.execute("SELECT path FROM images WHERE id = ?", [brightest[0]]).fetchone()[0]
            print(f"\nBrightest picture: {path} (mean {brightest[1]:.1f} of 255)")


if __name__ == "__main__":
    main()
