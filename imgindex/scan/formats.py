"""Which files are pictures: the formats this Pillow opens, HEIC/HEIF through pillow-heif, JPEG XL
through pillow-jxl-plugin (the extra ``imgindex[jxl]``), camera RAW through rawpy (the extra
``imgindex[raw]``), and the kinds of files a photo folder also holds (videos) that are counted,
not read.

pillow-heif registers its opener with Pillow here, once per process (the scan's workers too), so
``Image.open`` reads HEIC/HEIF by content, whatever the file is called. When pillow-heif is
missing or fails to load, HEIF files are still read (not skipped) and end in ``scan_errors`` as
``unsupported_format`` with the install hint, so a phone backup never looks clean by accident.
"""

from __future__ import annotations

import os
from functools import lru_cache

from PIL import Image

HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif", ".heics", ".heifs"})
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
VIDEO_EXTENSIONS = frozenset({".mov", ".mp4", ".m4v", ".avi", ".3gp", ".mkv", ".webm", ".mts", ".m2ts", ".wmv"})
RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw"})
INSTALL_HEIF = "HEIC/HEIF needs pillow-heif, which could not be loaded ({why}): pip install pillow-heif"
JXL_EXTENSIONS = frozenset({".jxl"})


@lru_cache(maxsize=1)
def heif_problem() -> str | None:
    """Register pillow-heif with Pillow; None when it works, else why not (for the error message)."""
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except Exception as exc:  # ImportError, or a broken libheif: HEIF files are reported, never silently skipped
        return f"{type(exc).__name__}: {exc}"
    return None


@lru_cache(maxsize=1)
def jxl_available() -> bool:
    """Register pillow-jxl-plugin (``pip install imgindex[jxl]``) with Pillow when it is installed."""
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL opener on import)
    except Exception:  # not installed, or a broken build: .jxl files are skipped with the install hint
        return False
    return True


@lru_cache(maxsize=1)
def raw_available() -> bool:
    """rawpy (LibRaw) is installed: ``pip install imgindex[raw]``."""
    try:
        import rawpy  # noqa: F401
    except Exception:  # not installed, or a broken build: RAW files are skipped with the install hint
        return False
    return True


def is_raw(path: str) -> bool:
    """A camera RAW file, by its extension (LibRaw reads it; Pillow would take a DNG for a TIFF preview)."""
    return os.path.splitext(path)[1].lower() in RAW_EXTENSIONS


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Lower-case extensions (with the dot) of the files a scan reads: what this Pillow opens, HEIF, RAW."""
    heif_problem()
    jxl_available()
    Image.init()
    opened = {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return frozenset(opened | HEIF_EXTENSIONS | (RAW_EXTENSIONS if raw_available() else frozenset()))


def skipped_kind(name: str) -> str:
    """Why a file with a non-image extension is not read, by the kind of file it is."""
    ext = os.path.splitext(name)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return "video (not read)"
    if ext in RAW_EXTENSIONS:
        return "RAW camera file (not read: pip install 'imgindex[raw]')"
    if ext in JXL_EXTENSIONS:
        return "JPEG XL (not read: pip install 'imgindex[jxl]')"
    return "extension not an image format"


def is_heif(head: bytes) -> bool:
    """An ISO-BMFF file whose brand is a HEIF image (the first 12 bytes: size, 'ftyp', brand)."""
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS
