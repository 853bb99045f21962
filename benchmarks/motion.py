#!/usr/bin/env python3
"""What the motion check sets aside beyond benchmarks/accuracy.py: smaller moving subjects, and copies
of kinds it was never calibrated on.

    python benchmarks/motion.py [--corpus DIR] [--workdir DIR] [--limit 224] [--seed 7] [--processes 2]
                                [--large-blocks-only]

From each real photo (capped at 1,024 px, as make_edits.py does) the script writes:
- two shots in which a subject moved 2-3%, as make_edits.py scenes makes them, but with a region a
  tenth and a fifth of the picture a side (``moved12``, ``moved20``); each is its own photo;
- copies of it people make: sharpened, re-encoded at JPEG quality 30 and at 70 without chroma
  subsampling, resized to a half (nearest neighbour) and a third (bilinear), a 1% crop (each side,
  and the left side only), straightened by half a degree, median-filtered, re-saved at a quarter.

All of it is indexed with imgindex and searched twice, rotate on, same_dim off: the 'similar' preset,
and the same signals at MSE 6 as a number (no motion check). Per kind, printed: pairs with their
photo within pixel MSE 6, how many of those the check set aside, and what each search joined.
Figures only: a benchmark, not a test. About 2 minutes on 2 cores for 224 photos.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageFilter, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import imgindex  # noqa: E402
from imgindex.compare import motion  # noqa: E402
from test_motion import moved_subject  # noqa: E402  the tests' recipe: one for fixtures and benchmark

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "real-photos"
SIGNALS = "pixels,tone,rank,trimmed"
SHOTS = ("moved12", "moved20")  # other photos: every pair with their photo is a false join


def copies(im: Image.Image) -> dict[str, tuple[Image.Image, dict]]:
    """kind -> (image, save options): copies people make of a photo."""
    w, h = im.size
    c1, c2 = int(w * 0.01), int(h * 0.01)
    return {
        "sharpen": (im.filter(ImageFilter.UnsharpMask(2, 80, 2)), {}),
        "jpeg30": (im, {"quality": 30}),
        "jpeg70-444": (im, {"quality": 70, "subsampling": 0}),
        "nearest-half": (im.resize((w // 2, h // 2), Image.Resampling.NEAREST), {}),
        "bilinear-third": (im.resize((w // 3, h // 3), Image.Resampling.BILINEAR), {}),
        "crop1": (im.crop((c1, c2, w - c1, h - c2)), {}),
        "crop1-left": (im.crop((c1, 0, w, h)), {}),
        "straighten-0.5": (im.rotate(0.5, resample=Image.Resampling.BICUBIC).crop((c1, c2, w - c1, h - c2)), {}),
        "median3": (im.filter(ImageFilter.MedianFilter(3)), {}),
        "quarter": (im.resize((max(1, w // 4), max(1, h // 4)), Image.Resampling.LANCZOS), {"quality": 85}),
    }


def build(corpus: Path, out: Path, limit: int, seed: int) -> dict[str, tuple[str, str]]:
    """Write the set; path -> (photo, kind)."""
    files = sorted(p for p in corpus.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    if not files:
        sys.exit(f"no photos in {corpus}")
    rng = random.Random(seed)
    truth = {}
    for f in files:
        with Image.open(f) as src:
            im = ImageOps.exif_transpose(src).convert("RGB")
        im.thumbnail((1024, 1024))
        made = {"original": (im, {"quality": 92}), "moved12": (moved_subject(im, rng, 0.12), {"quality": 92}),
                "moved20": (moved_subject(im, rng, 0.20), {"quality": 92}), **copies(im)}
        for kind, (x, options) in made.items():
            path = out / f"{f.stem}__{kind}.jpg"
            x.save(path, quality=options.get("quality", 92), **{k: v for k, v in options.items() if k != "quality"})
            truth[str(path)] = (f.stem, kind)
    return truth


def joined(index: imgindex.Index, similarity) -> tuple[dict[frozenset, float], int]:
    report = index.search(similarity=similarity, signals=SIGNALS, rotate=True, mirror=False, same_dim=False,
                          full=True)
    pairs = {frozenset((a, b)): m for a, b, m in index.db.execute("SELECT path_a, path_b, mse FROM match_pairs")}
    return pairs, report.moved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--workdir", type=Path, help="keep the set and its index here (default: a temp dir)")
    parser.add_argument("--limit", type=int, default=224, help="photos (default 224)")
    parser.add_argument("--seed", type=int, default=7, help="where the subjects are and how they move")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--large-blocks-only", action="store_true",
                        help="the check with its first scale alone (to see what the small blocks add)")
    args = parser.parse_args(argv)
    if args.large_blocks_only:  # the check runs in this process: its scales can be cut here
        motion.SCALES = motion.SCALES[:1]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        folder = work / f"motion-seed{args.seed}-n{args.limit}"
        folder.mkdir(parents=True, exist_ok=True)
        print(f"writing the set in {folder} ...", flush=True)
        truth = build(args.corpus, folder, args.limit, args.seed)
        db = work / f"motion-seed{args.seed}-n{args.limit}.db"
        db.unlink(missing_ok=True)
        with imgindex.Index(db) as index:
            print(f"indexing {len(truth)} files ...", flush=True)
            index.scan([folder], processes=args.processes)
            plain, _ = joined(index, 6.0)
            similar, moved_count = joined(index, "similar")
    originals = {photo: p for p, (photo, kind) in truth.items() if kind == "original"}
    kinds = list(dict.fromkeys(kind for _, kind in truth.values() if kind != "original"))
    print(f"\n{len(originals)} photos from {args.corpus}; the 'similar' search set {moved_count} close pairs aside.\n")
    print("| kind | with its photo | within MSE 6 | set aside as moved | joined by MSE 6 (signals, no check) "
          "| joined by `similar` |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        pairs = [frozenset((originals[photo], p)) for p, (photo, k) in truth.items() if k == kind]
        close = [p for p in pairs if plain.get(p, float("inf")) <= 6.0]
        aside = [p for p in close if p not in similar]
        label = f"{kind} (another shot)" if kind in SHOTS else kind
        print(f"| {label} | {len(pairs)} | {len(close)} | {len(aside)} | {sum(p in plain for p in pairs)} "
              f"| {sum(p in similar for p in pairs)} |")
    print("\nFor another shot, every pair joined is a false join; for a copy, every pair set aside is a copy missed.")


if __name__ == "__main__":
    main()
