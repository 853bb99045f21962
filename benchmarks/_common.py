"""Shared by the benchmark scripts: a deterministic photo-like corpus, and process-tree measurements.

Benchmarks print figures; they never assert. Linux only (peak memory is read from /proc).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

WORKDIR = Path(os.environ.get("IMGINDEX_BENCH_DIR", "/tmp/imgindex-bench"))


def photo_like(seed: int, width: int = 1024, height: int = 768) -> Image.Image:
    """Smooth colour fields with soft edges and grain: decodes and compresses like a photo."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    base = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.integers(-6, 7, (height, width, 3), dtype=np.int16)
    return Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8))


def _make_one(args: tuple[Path, int, int]) -> None:
    folder, i, size = args
    path = folder / f"IMG_{i:06d}.jpg"
    if path.exists():
        return
    kind = i % 20
    if kind == 1:  # 5% byte copies of the previous picture
        shutil.copyfile(folder / f"IMG_{i - 1:06d}.jpg", path)
        return
    seed = i - 2 if kind == 2 else i  # 5% re-encodes (quality 80) of the picture two before: near-copies
    quality = 80 if kind == 2 else 92
    photo_like(seed, size, size * 3 // 4).save(path, quality=quality)


def corpus(n: int, size: int = 1024, processes: int = 2) -> Path:
    """WORKDIR/corpus-<size>/<n>: n JPEGs, 5% byte copies, 5% re-encoded near-copies. Cached."""
    folder = WORKDIR / f"corpus-{size}" / str(n)
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(folder, i, size) for i in range(n) if not (folder / f"IMG_{i:06d}.jpg").exists()]
    if todo:
        print(f"  generating {len(todo)} JPEGs of {size} px in {folder} (cached for later runs)...", flush=True)
        # byte copies need their source first: make the sources, then the copies
        sources = [t for t in todo if t[1] % 20 != 1]
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(_make_one, sources, chunksize=64))
        for t in todo:
            if t[1] % 20 == 1:
                _make_one(t)
    return folder


def warm(folder: Path) -> None:
    """Read every file once, so the runs compared start from the same warm page cache."""
    for path in folder.rglob("*"):
        if path.is_file():
            path.read_bytes()


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float  # summed over the process and all its descendants, sampled every 50 ms
    returncode: int
    stdout: str
    stderr: str


def _tree_rss_kb(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fp:
                fields = dict(line.split(":", 1) for line in fp if ":" in line)
        except OSError:
            continue
        pid, ppid = int(entry), int(fields.get("PPid", "0").strip())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measure(cmd: list[str], env: dict | None = None, cwd: Path | None = None, *, check: bool = True) -> Run:
    """Run a command; wall time and the peak of the summed RSS of its process tree.

    A command that fails ends the benchmark (``check``): a time printed for a failed run is a lie.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if check and proc.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(map(str, cmd))} exited {proc.returncode}:\n{err}")
    return Run(seconds, peak / 1024, proc.returncode, out, err)
