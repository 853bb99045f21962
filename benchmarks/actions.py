#!/usr/bin/env python3
"""What acting on duplicates costs: move-to, undo, delete (trash), undo, a cross-device move.

    python benchmarks/actions.py --n 2000 5000

For each size: N photo-like 1024x768 JPEGs from the cached corpus, each with a byte copy in
backup/ (N groups of two), indexed and searched; then each action as a whole command. Every
file is re-hashed before it is touched and every action is committed to the journal twice
(planned, done) with synchronous=FULL, so the figures include that safety. Prints files/s and
MB/s, and checks that every content is still there after each step.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import corpus, measure  # noqa: E402


def imgindex(*args: str, env=None):
    run = measure([sys.executable, "-m", "imgindex.cli", *args], env=env)
    if run.returncode != 0:
        raise SystemExit(f"imgindex {' '.join(args)} failed:\n{run.stderr}")
    return run


def contents(*folders: Path) -> Counter:
    found = Counter()
    for folder in folders:
        for dirpath, _, names in os.walk(folder):
            for name in names:
                if not name.endswith(".trashinfo"):
                    with open(os.path.join(dirpath, name), "rb") as fp:
                        found[hashlib.sha256(fp.read()).hexdigest()] += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000])
    args = parser.parse_args()
    print(f"{'n':>6} {'step':<22} {'seconds':>8} {'files/s':>8} {'MB/s':>7}  all there")
    for n in args.n:
        source = corpus(n)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            root, db = tmp / "photos", tmp / "i.db"
            (root / "camera").mkdir(parents=True)
            (root / "backup").mkdir()
            for path in sorted(source.iterdir())[:n]:
                os.link(path, root / "camera" / path.name)
                with open(path, "rb") as fin, open(root / "backup" / path.name, "wb") as fout:
                    fout.write(fin.read())  # a real second copy, not a link: deleting it frees space
            env = dict(os.environ, XDG_DATA_HOME=str(tmp / "xdg"))
            megabytes = sum(p.stat().st_size for p in (root / "backup").iterdir()) / 1e6
            imgindex("find", str(root), "--db", str(db), "--processes", "2", "-q", "--format", "csv", "-o", os.devnull)
            before = contents(root)
            shm = Path("/dev/shm") / f"imgindex-bench-{os.getpid()}"
            steps = [
                ("move-to (same disk)", ["move-to", str(tmp / "dups"), "--db", str(db), "--yes"], (root, tmp / "dups")),
                ("undo", ["undo", "--db", str(db), "--yes"], (root,)),
                ("search again", ["search", "--db", str(db), "-q", "--format", "csv", "-o", os.devnull], (root,)),
                ("delete (to trash)", ["delete", "--db", str(db), "--yes"], (root, tmp / "xdg")),
                ("undo", ["undo", "--db", str(db), "--yes"], (root,)),
                ("search again", ["search", "--db", str(db), "-q", "--format", "csv", "-o", os.devnull], (root,)),
                ("move-to (other device)", ["move-to", str(shm), "--db", str(db), "--yes"], (root, shm)),
            ]
            try:
                for name, cmd, where in steps:
                    run = imgindex(*cmd, env=env)
                    acted = not name.startswith("search")
                    rate = f"{n / run.seconds:8.0f} {megabytes / run.seconds:7.1f}" if acted else f"{'':8} {'':7}"
                    print(f"{n:>6} {name:<22} {run.seconds:8.2f} {rate}  {contents(*where) == before}", flush=True)
            finally:
                os.system(f"rm -rf {shm}")


if __name__ == "__main__":
    main()
