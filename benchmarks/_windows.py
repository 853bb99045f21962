"""A realistic set of stored vectors for the search benchmarks: random windows of real photos.

Uniform random tensors flatter every pruning scheme; windows of real photos (random position,
scale 30-100% of the shorter side, aspect 3:4 to 4:3) resized to the tensor size have the
crowded, correlated distribution of a real library. Planted into it, with their pairs known:
exact copies (0.5%), near copies (1%, every value within +-2, as a re-encode) and turned near
copies (0.5%, a quarter or half turn plus +-1). All rows claim one pixel size, so they share
one same-dimension bucket, the hardest case.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from _vectors import PX, insert_images, near_copy

CORPUS = Path(os.environ.get("IMGINDEX_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpora"))
BLOCK = 10_000  # vectors made (and seeded) together: block k's content never depends on the others
_PHOTOS: list[Image.Image] = []


def photo_files() -> list[Path]:
    folder = CORPUS / "real-photos"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no real photos in {folder}: set IMGINDEX_CORPUS to the shared corpora folder")
    return files


def _load(files: list[Path]) -> list[Image.Image]:
    """Each photo once, at most 320 px on its longer side (windows are resized to 50 px anyway)."""
    out = []
    for path in files:
        with Image.open(path) as im:
            im.draft("RGB", (320, 320))
            im = im.convert("RGB")
            im.thumbnail((320, 320), Image.Resampling.BOX)
            out.append(im)
    return out


def window(rng: np.random.Generator, photo: Image.Image) -> np.ndarray:
    """One random window of ``photo`` as a PX x PX tensor."""
    w, h = photo.size
    side = rng.uniform(0.3, 1.0) * min(w, h)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ww, hh = min(w, side * np.sqrt(aspect)), min(h, side / np.sqrt(aspect))
    x0, y0 = rng.uniform(0, w - ww), rng.uniform(0, h - hh)
    small = photo.resize((PX, PX), Image.Resampling.BILINEAR, box=(x0, y0, x0 + ww, y0 + hh))
    return np.asarray(small, dtype=np.uint8)


def make_block(args: tuple[int, int, list[Path]]) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """(tensors, planted) of block ``k``: planted (original, copy, kind) as positions in the block."""
    k, size, files = args
    if not _PHOTOS:
        _PHOTOS.extend(_load(files))
    rng = np.random.default_rng([20261202, k])
    tensors = np.stack([window(rng, _PHOTOS[rng.integers(len(_PHOTOS))]) for _ in range(size)])
    planted = []
    for j in range(0, size - 1, 200):  # 0.5% exact copies
        tensors[j + 1] = tensors[j]
        planted.append((j, j + 1, "exact"))
    for j in range(10, size - 1, 100):  # 1% near copies
        tensors[j + 1] = near_copy(rng, tensors[j])
        planted.append((j, j + 1, "near"))
    for j in range(60, size - 1, 200):  # 0.5% turned near copies
        turned = np.rot90(tensors[j], k=1 + (j // 200) % 3)
        tensors[j + 1] = np.clip(turned.astype(np.int16) + rng.integers(-1, 2, turned.shape), 0, 255)
        planted.append((j, j + 1, "turned"))
    return tensors, planted


def fill(index, n: int, processes: int = 2, progress=print) -> list[tuple[int, int, str]]:
    """Store n window vectors in ``index`` (ids 1..n in a fresh index); returns the planted pairs as ids."""
    files = photo_files()
    blocks = [(k, min(BLOCK, n - k * BLOCK), files) for k in range(-(-n // BLOCK))]
    planted = []
    with ProcessPoolExecutor(processes) as pool:
        for (k, size, _), (tensors, plants) in zip(blocks, pool.map(make_block, blocks)):
            first = k * BLOCK
            for start in range(0, size, 1000):
                part = tensors[start : start + 1000]
                insert_images(index, [f"/windows/{(first + start + j) // 1000:04d}/{first + start + j:07d}.jpg"
                                      for j in range(len(part))], part)
            planted += [(first + a + 1, first + b + 1, kind) for a, b, kind in plants]
            progress(f"  {first + size:>9,} vectors stored")
    return planted
