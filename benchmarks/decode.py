#!/usr/bin/env python3
"""Decoding speed: images/second, full decode vs imgindex's draft decode, one process and all.

    python benchmarks/decode.py [--corpus DIR] [--n-large 40] [--px-size 50] [--processes N]

Sets: the real photos of ../shared/corpora/real-photos (JPEG and PNG, 320-2560 px; or any
--corpus folder), generated 12-megapixel JPEGs (4000x3000, quality 90), the same pictures as
12-MP HEICs (pillow-heif, quality 90), as 3-MP AVIFs (Pillow, quality 80), as 12-MP DNGs
(read with rawpy): a mosaic alone (pidng), and with a camera's JPEG preview, full size or
1616x1212 (tests/dng_preview.py), and the real phone HEICs of ../shared/corpora/phone-heic when
present (--sets picks sets by name). Two decoders:
"full" decodes every pixel and resizes, the way difPy does (open, convert to RGB, bicubic
resize; a DNG: LibRaw's full-size rendering, or the preview imgindex reads, decoded in full);
"imgindex" is imgindex.decode (JPEG DCT scaling with the box draft() returns, then
one resize, EXIF orientation applied). Each with 1 process and with --processes, after a warm-up
read of every file so the disk is not what is measured. Also the MSE between the two tensors
(how faithful draft decoding is) and a whole `Index.scan` (hash + decode + SQLite) per set.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import photo_like  # noqa: E402

import imgindex  # noqa: E402
from imgindex.scan.decode import decode_path  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "real-photos"


def full_decode(path: str, px: int) -> bytes:
    if path.endswith(".dng"):  # Pillow reads no RAW: LibRaw's full-size rendering, or the preview in full
        import io

        import rawpy

        with rawpy.imread(path) as raw:
            if "preview" in Path(path).parent.name:
                im = Image.open(io.BytesIO(raw.extract_thumb().data)).convert("RGB")
            else:
                im = Image.fromarray(raw.postprocess(use_camera_wb=True, output_bps=8))
        return np.asarray(im.resize((px, px), Image.Resampling.BICUBIC)).tobytes()
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((px, px), Image.Resampling.BICUBIC)).tobytes()


def draft_decode(path: str, px: int) -> bytes:
    return decode_path(path, px).tensor


DECODERS = {"full": full_decode, "imgindex": draft_decode}


def _decode_many(args: tuple[str, list[str], int]) -> int:
    name, paths, px = args
    for path in paths:
        DECODERS[name](path, px)
    return len(paths)


def throughput(name: str, paths: list[str], px: int, processes: int) -> float:
    """Images per second; files spread over the processes in chunks."""
    start = time.perf_counter()
    if processes == 1:
        _decode_many((name, paths, px))
    else:
        chunks = [paths[i :: processes * 4] for i in range(processes * 4)]
        # fresh interpreters: forking after the AVIF/HEIF decoders started their threads can deadlock
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_decode_many, [(name, c, px) for c in chunks if c]))
    return len(paths) / (time.perf_counter() - start)


def fidelity(paths: list[str], px: int) -> tuple[float, float]:
    errors = []
    for path in paths:
        a = np.frombuffer(full_decode(path, px), np.uint8).astype(np.float64)
        b = np.frombuffer(draft_decode(path, px), np.uint8).astype(np.float64)
        errors.append(float(((a - b) ** 2).mean()))
    return float(np.median(errors)), float(np.max(errors))


def scan_rate(folder: Path, n: int, processes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, imgindex.Index(Path(tmp) / "bench.db") as index:
        start = time.perf_counter()
        index.scan([folder], processes=processes)
        return n / (time.perf_counter() - start)


def large_jpegs(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"large{i:03d}.jpg"
        if not path.exists():
            photo_like(500 + i, 4000, 3000).save(path, quality=90)
        paths.append(str(path))
    return paths


def encoded(folder: Path, n: int, fmt: str, size: tuple[int, int], **options) -> list[str]:
    """The first ``n`` generated pictures saved as ``fmt`` (HEIF, AVIF) at ``size``; cached."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"large{i:03d}.{fmt.lower()}"
        if not path.exists():
            photo_like(500 + i, *size).save(path, format=fmt, **options)
        paths.append(str(path))
    return paths


def heif_thumbnail_check(paths: list[str], px: int) -> tuple[float, float, float, int] | None:
    """Embedded HEIF thumbnails as a fast path (pillow-heif's draft picks one only when it is a scaled
    copy of the image): (median, max MSE of the tensor to the full decode's, thumbnail images/s, files
    with a usable one). imgindex decodes HEIFs in full while this MSE is above the JPEG draft's."""
    from imgindex.scan import decode as d

    errors, seconds = [], 0.0
    for path in paths:
        with Image.open(path) as im:
            start = time.perf_counter()
            if im.draft("RGB", (px * d.DRAFT_GAP,) * 2) is None:
                continue
            im.load()
            thumb = np.asarray(d._resize(d._normalise_mode(im), px, None), dtype=np.float64)
            seconds += time.perf_counter() - start
        full = np.frombuffer(decode_path(path, px).tensor, np.uint8).reshape(px, px, 3).astype(np.float64)
        errors.append(float(((thumb - full) ** 2).mean()))
    if not errors:
        return None
    return float(np.median(errors)), float(np.max(errors)), len(errors) / seconds, len(errors)


def heic_large_worker_rss(folder: Path, width: int, height: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one fresh process decoding a large HEIC into a tensor, as a worker does.

    Written as phones write theirs, a grid of 512-px tiles (pillow-heif's ``tile_size``): libde265
    cannot decode one HEVC picture that large (6000x4000 fails here). Encoding 48 MP takes a minute."""
    from _common import measure

    path = folder / f"{width}x{height}-tiled.heic"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        photo_like(999, width, height).save(path, format="HEIF", quality=90, tile_size=512)
    run = measure([sys.executable, "-c", "import sys; from imgindex.scan.decode import read_file; "
                   "r = read_file(sys.argv[1], 50); sys.exit(0 if r.decoded else 1)", str(path)])
    if run.returncode != 0:
        raise SystemExit(f"decoding {path} failed: {run.stderr}")
    return run.peak_rss_mb, run.seconds


def dngs(folder: Path, n: int, width: int, height: int, preview: tuple[int, int] | None = None) -> list[str]:
    """The first ``n`` generated pictures as DNGs (a 12-bit RGGB mosaic), with a JPEG preview of the
    picture at ``preview`` size if given (as cameras embed theirs); cached."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_raw import make_dng  # the tests' DNG writer: one recipe for fixtures and benchmark

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"large{i:03d}.dng"
        if not path.exists():
            picture = photo_like(500 + i, width, height)
            shown = None if preview is None else picture.resize(preview, Image.Resampling.BICUBIC)
            make_dng(np.asarray(picture), path, preview=shown)
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--n-large", type=int, default=40)
    parser.add_argument("--n-heic", type=int, default=12, help="12-MP HEICs to make (encoding takes ~1 s each)")
    parser.add_argument("--px-size", type=int, default=50)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    parser.add_argument("--heic-large", action="store_true", help="also: peak RSS of a process decoding a 48-MP HEIC")
    parser.add_argument("--sets", default="", help="only the sets whose name holds this text (say: DNG)")
    args = parser.parse_args()
    sets = {}
    if args.corpus.is_dir():
        photos = sorted(str(p) for p in args.corpus.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        sets[f"real photos ({len(photos)})"] = (photos, args.corpus)
    else:
        print(f"no corpus at {args.corpus}: skipping the real photos (give --corpus DIR)")
    large_dir = Path(tempfile.gettempdir()) / "imgindex-bench" / "large-12mp"
    print(f"generating {args.n_large} 12-MP JPEGs in {large_dir} (cached)...", flush=True)
    sets[f"12-MP JPEGs ({args.n_large})"] = (large_jpegs(large_dir, args.n_large), large_dir)
    bench = Path(tempfile.gettempdir()) / "imgindex-bench"
    print(f"encoding {args.n_heic} 12-MP HEICs and AVIFs in {bench} (cached)...", flush=True)
    sets[f"12-MP HEICs ({args.n_heic})"] = (encoded(bench / "heic-12mp", args.n_heic, "HEIF", (4000, 3000),
                                                    quality=90, thumbnails=[320]), bench / "heic-12mp")
    sets[f"3-MP AVIFs ({args.n_heic})"] = (encoded(bench / "avif-3mp", args.n_heic, "AVIF", (2000, 1500),
                                                   quality=80), bench / "avif-3mp")
    try:
        sets[f"12-MP DNGs ({args.n_heic})"] = (dngs(bench / "dng-12mp", args.n_heic, 4000, 3000), bench / "dng-12mp")
        for label, size in (("full-size", (4000, 3000)), ("1616-px", (1616, 1212))):
            folder = bench / f"dng-12mp-preview-{size[0]}"
            sets[f"DNGs, {label} preview ({args.n_large})"] = (dngs(folder, args.n_large, 4000, 3000, size), folder)
    except ImportError as exc:
        print(f"no DNGs: {exc} (pip install 'imgindex[raw]' pidng)")
    phone = DEFAULT_CORPUS.parent / "phone-heic"
    if phone.is_dir():
        heics = sorted(str(p) for p in phone.glob("*.heic"))
        sets[f"real phone HEICs ({len(heics)})"] = (heics, phone)
    if args.heic_large:
        rss, seconds = heic_large_worker_rss(bench / "heic-large", 8064, 6048)
        print(f"  48-MP HEIC (tiled) in a fresh process: peak RSS {rss:.0f} MB, {seconds:.1f} s"
              " (start-up included)", flush=True)
    sets = {label: s for label, s in sets.items() if args.sets.lower() in label.lower()}
    rows = []
    for label, (paths, folder) in sets.items():
        for path in paths:  # warm the page cache
            Path(path).read_bytes()
        for name in DECODERS:
            for processes in sorted({1, args.processes}):
                rate = max(throughput(name, paths, args.px_size, processes) for _ in range(args.repeat))
                rows.append((label, name, processes, rate))
                print(f"  {label:<22} {name:<9} {processes} process(es): {rate:8.1f} images/s", flush=True)
        median, worst = fidelity(paths, args.px_size)
        heif = heif_thumbnail_check(paths, args.px_size) if "HEIC" in label else None
        if heif is not None:
            rows.append((label, "thumbnail", heif, None))
        scans = {p: scan_rate(folder, len(paths), p) for p in sorted({1, args.processes})}
        rows.append((label, "fidelity", median, worst))
        rows.append((label, "scan", scans, None))
    print()
    print(f"{'set':<22} {'decoder':<9} {'processes':>9} {'images/s':>10} {'speed-up vs full':>17}")
    base = {(r[0], r[2]): r[3] for r in rows if r[1] == "full"}
    for label, name, a, b in rows:
        if name in DECODERS:
            print(f"{label:<22} {name:<9} {a:>9} {b:>10.1f} {b / base[(label, a)]:>16.1f}x")
        elif name == "thumbnail":
            med, top, rate, n = a
            print(f"{label:<22} embedded thumbnails ({n} files): {rate:.0f} images/s on 1 core, MSE to the full "
                  f"decode median {med:.2f}, max {top:.2f}: too far to mix with full decodes (not used)")
        elif name == "fidelity":
            print(f"{label:<22} MSE imgindex vs full decode: median {a:.2f}, max {b:.2f} (0-255 scale)")
        else:
            print(f"{label:<22} Index.scan (hash + decode + SQLite): "
                  + ", ".join(f"{rate:.1f} images/s with {p} process(es)" for p, rate in a.items()))


if __name__ == "__main__":
    main()
