#!/usr/bin/env python3
"""Generate a demo photo folder with known duplicates, to try imgindex on.

    python examples/make_demo_photos.py demo-photos [--originals 40] [--size 1024] [--seed 1]

Writes DIR/originals/ (distinct photo-like JPEGs), DIR/backup/ (byte copies under other names),
DIR/edited/ (re-encoded, resized, rotated, PNG and EXIF-rotated copies) and DIR/broken/ (a
truncated JPEG and a text file named .jpg, which a scan records as errors). Deterministic for
a given --seed. Needs only numpy and Pillow.
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def photo_like(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth gradients, a few soft blobs and grain: compresses and rescales like a photo."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        a, b, phase = rng.uniform(0.5, 2.5, 2).tolist() + [rng.uniform(0, 6.3)]
        img[..., c] = 110 + 70 * np.sin(2 * np.pi * (a * x + b * y) + phase)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.25)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-90, 90, 3).astype(np.float32)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def save_jpeg(img: Image.Image, path: Path, quality: int = 90, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=quality, **kw)


def exif_rotated(img: Image.Image, path: Path) -> None:
    """The pixels stored turned, with the EXIF tag that tells viewers to turn them back."""
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers rotate 90 degrees clockwise to show it upright
    save_jpeg(img.transpose(Image.Transpose.ROTATE_90), path, exif=exif)


# How the i-th original is edited, by i % 8 (6 and 7: left alone, no duplicate).
EDITS = {
    1: ("q70.jpg", lambda img, path: save_jpeg(img, path, quality=70)),
    2: ("small.jpg", lambda img, path: save_jpeg(img.resize((img.width // 2, img.height // 2)), path)),
    3: ("rotated.jpg", lambda img, path: save_jpeg(img.transpose(Image.Transpose.ROTATE_90), path)),
    4: ("png.png", lambda img, path: img.save(path)),
    5: ("exif.jpg", exif_rotated),
}


def make(out: Path, originals: int, size: int, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    counts = {"originals": 0, "copies": 0, "edited": 0, "broken": 0}
    (out / "backup").mkdir(parents=True)
    (out / "edited").mkdir()
    for i in range(originals):
        w, h = (size, size * 3 // 4) if i % 3 != 2 else (size * 3 // 4, size)
        img = photo_like(rng, w, h)
        name = f"IMG_{1000 + i}"
        original = out / "originals" / f"{name}.jpg"
        save_jpeg(img, original, quality=92)
        counts["originals"] += 1
        if i % 8 == 0:
            shutil.copy2(original, out / "backup" / f"copy of {name}.jpg")
            counts["copies"] += 1
        elif i % 8 in EDITS:
            suffix, edit = EDITS[i % 8]
            edit(img, out / "edited" / f"{name}_{suffix}")
            counts["edited"] += 1
    broken = out / "broken"
    broken.mkdir()
    buf = io.BytesIO()
    photo_like(rng, 320, 240).save(buf, "JPEG")
    (broken / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (broken / "not-really.jpg").write_text("this is a text file with a .jpg name\n")
    counts["broken"] = 2
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to create (must not exist or be empty)")
    parser.add_argument("--originals", type=int, default=40, help="distinct pictures (default 40)")
    parser.add_argument("--size", type=int, default=1024, help="long side in pixels (default 1024)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} exists and is not empty; choose a new folder")
    counts = make(args.out, args.originals, args.size, args.seed)
    print(
        f"Wrote {args.out}: {counts['originals']} originals, {counts['copies']} byte copies, "
        f"{counts['edited']} edited copies, {counts['broken']} broken files."
    )


if __name__ == "__main__":
    main()
