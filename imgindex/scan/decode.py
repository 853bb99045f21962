"""File -> small RGB tensor. Every way a file can be bad ends here as a typed DecodeError.

The tensor is what the comparer measures, so it must be a faithful, deterministic function of
the picture, cheap to make, and the same for a copy that was rotated on disk or by EXIF:

1. JPEGs are decoded with DCT scaling (``draft``) to at least ``DRAFT_GAP * px_size`` pixels a
   side, and the resize uses the box ``draft`` returns, so the partial edge block maps to the
   same place whatever the orientation of the file.
2. The mode is brought to L, LA, RGB or RGBA (palette, 1-bit, 16-bit, CMYK... see ``_normalise_mode``).
3. One resize to ``px_size`` x ``px_size`` (bicubic, antialiased, no integer ``reduce()`` first:
   its partial edge block is on a different side for a rotated copy). Transparent pixels are
   resized premultiplied, then composited on white.
4. EXIF orientation is applied to the small result (a lossless transpose), so an EXIF-rotated
   copy and a copy whose pixels were rotated give the same tensor.

Animated images use their first frame. ``DECODER`` names this recipe; it is stored with each
tensor so tensors made another way are never mixed with these silently. Camera RAW files have
recipes of their own (``raw``: the embedded preview, or LibRaw's demosaic), recorded the same way.

A picture framed by uniform borders (letterbox or pillarbox bars, a mat) also gets a *trimmed*
tensor: the same recipe on the region inside the borders, found on the decoded pixels (sub-pixel
at the tensor's scale; ``borders``), for the ``trimmed`` signal.
"""

from __future__ import annotations

import errno
import io
import hashlib
import os
import stat
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from imgindex.compare.keys import ImageKeys
from imgindex.errors import DecodeError
from imgindex.scan import formats, raw
from imgindex.scan.borders import content_box, inner_size

formats.heif_problem()  # register pillow-heif's opener in this process (workers too)
formats.jxl_available()  # and pillow-jxl-plugin's, where the [jxl] extra is installed

DECODER = "pil-draft-bicubic-v1"
DRAFT_GAP = 3  # DCT scaling stops at >= 3x the target: 1.7 ms for a 1024-px JPEG, MSE < 1 to a full decode
REDUCING_GAP = None  # no integer reduce() first: its partial edge block breaks rotation symmetry
RESAMPLE = Image.Resampling.BICUBIC
WHITE = (255, 255, 255, 255)

# EXIF orientation -> the transpose that undoes it (as ImageOps.exif_transpose does).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class DecodedImage:
    """A downsampled picture: ``tensor`` is px*px*3 uint8 bytes, RGB, C order."""

    tensor: bytes
    width: int
    height: int
    format: str | None
    trimmed: bytes | None = None  # the tensor of the region inside uniform borders; None: no borders
    inner: tuple[int, int] | None = None  # that region's (width, height) in the file's pixels, turned as width
    keys: ImageKeys | None = None  # its search keys, made beside the decode (``scan.reader.with_keys``)
    decoder: str = DECODER  # the recipe that made it (``DECODER``, or one of ``raw.RECIPES``)


@dataclass(frozen=True)
class FileResult:
    """What reading one file produced. Exactly one of decoded / error / vanished / known applies."""

    path: str
    size: int = 0
    mtime_ns: int = 0
    content_hash: str = ""
    decoded: DecodedImage | None = None
    error: DecodeError | None = None
    vanished: bool = False
    hash_seconds: float = 0.0  # CPU time of the reading process: hashing the file, then decoding it
    decode_seconds: float = 0.0
    keys_seconds: float = 0.0  # its share of making the batch's search keys (``scan.reader.with_keys``)

    @property
    def known(self) -> bool:
        """The content hash is already in the index: no decode was needed."""
        return self.decoded is None and self.error is None and not self.vanished


def decode_image(fp, px_size: int, *, raw_format: str | None = None) -> DecodedImage:
    """Decode an open binary file object into a px_size x px_size RGB tensor.

    ``raw_format`` (say 'DNG'): a camera RAW file, read by LibRaw (``raw``) instead of opened by Pillow.
    """
    if raw_format is not None:
        picture = raw.open_raw(fp, px_size * DRAFT_GAP, px_size)
        return _decoded(picture.image, picture.box, picture.orientation, picture.size, raw_format, px_size,
                        picture.recipe)
    with warnings.catch_warnings():
        # Pillow warns (89 MP) before it refuses (179 MP); large panoramas are legitimate.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(fp) as im:
            box, size = None, im.size  # the file's size: a draft makes im.size the scaled one
            if im.format == "JPEG":
                target = px_size * DRAFT_GAP
                drafted = im.draft("RGB", (target, target))
                if drafted is not None:
                    box = drafted[1]
            im.load()
            # EXIF after load(): for PNG, getexif() loads the image itself, and a failure swallowed
            # there would leave a half-decoded image marked as loaded
            return _decoded(_normalise_mode(im), box, _orientation(im), size, im.format, px_size, DECODER)


def _decoded(normal: Image.Image, box, orientation: int, size: tuple[int, int], fmt: str | None, px_size: int,
             recipe: str) -> DecodedImage:
    """The tensor (and trimmed tensor) of a loaded picture whose EXIF ``orientation`` is still to apply;
    ``size`` is the file's picture size in ``normal``'s frame (before a draft scaled it)."""
    small = _resize(normal, px_size, box)
    inside = content_box(normal, box)
    trimmed = _resize_inside(normal, px_size, inside) if inside is not None else None
    inner = None if inside is None else inner_size(inside, box or (0, 0, *normal.size), size)
    width, height = size
    if orientation in (5, 6, 7, 8):
        width, height = height, width
        inner = None if inner is None else inner[::-1]
    return DecodedImage(tensor=_tensor(small, orientation, px_size), width=width, height=height, format=fmt,
                        trimmed=None if trimmed is None else _tensor(trimmed, orientation, px_size), inner=inner,
                        decoder=recipe)


def recipes(path: str) -> tuple[str, ...]:
    """The recipes a decode of this file today may use: a row made by any other is made again."""
    return raw.RECIPES if formats.is_raw(path) else (DECODER,)


def _resize_inside(im: Image.Image, px_size: int, inside) -> Image.Image:
    """``_resize`` of the region ``inside`` (fractional) with nothing of what lies outside it: a
    bicubic resize with a box reads pixels around the box, and the border's colour would leak into
    the edge rows. Cropped first to the whole pixels around it, which the resize then clamps at."""
    left, top = int(np.floor(inside[0])), int(np.floor(inside[1]))
    right, bottom = int(np.ceil(inside[2])), int(np.ceil(inside[3]))
    crop = im.crop((left, top, right, bottom))
    return _resize(crop, px_size, (inside[0] - left, inside[1] - top, inside[2] - left, inside[3] - top))


def _tensor(small: Image.Image, orientation: int, px_size: int) -> bytes:
    """The stored bytes of a resized picture, its EXIF orientation applied (a lossless transpose)."""
    if orientation in _ORIENTATION:
        small = small.transpose(_ORIENTATION[orientation])
    tensor = np.asarray(small, dtype=np.uint8)
    if tensor.shape != (px_size, px_size, 3):  # pragma: no cover - a Pillow contract broke
        raise ValueError(f"unexpected tensor shape {tensor.shape}")
    return tensor.tobytes()


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # a broken EXIF block must not lose the picture
        return 1


def _normalise_mode(im: Image.Image) -> Image.Image:
    """Bring any mode to L, LA, RGB or RGBA without losing what the pixels mean.

    Palette with transparency -> RGBA; 1-bit -> L; 16/32-bit integer -> L scaled from the
    0..65535 range (x / 257, rounded, clipped); float -> L clipped to 0..255;
    CMYK, YCbCr, LAB, HSV and others -> RGB by Pillow's conversion.
    """
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return im
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode in ("La",):
        return im.convert("LA")
    if mode in ("RGBa",):
        return im.convert("RGBA")
    if mode.startswith("I"):
        values = np.asarray(im).astype(np.float64)
        return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")
    if mode == "F":
        values = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(np.nan_to_num(values)), 0, 255).astype(np.uint8), "L")
    return im.convert("RGB")


def _resize(im: Image.Image, px_size: int, box) -> Image.Image:
    small = im.resize((px_size, px_size), RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
    if small.mode in ("LA", "RGBA"):
        background = Image.new("RGBA", small.size, WHITE)
        small = Image.alpha_composite(background, small.convert("RGBA"))
    return small.convert("RGB")


def read_file(
    path: str,
    px_size: int,
    is_known_hash: Callable[[str, tuple[str, ...]], bool] = lambda _h, _r: False,
) -> FileResult:
    """Hash a file and, unless its content is already indexed, decode it. Never raises.

    One open file handle serves the stat, the hash and the decode, so the three describe the
    same file even if the path is replaced meanwhile. Opened non-blocking and without following
    symlinks, so a FIFO or a link swapped in after the walk cannot hang or redirect the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return FileResult(path=path, vanished=True)
    except OSError as exc:
        return FileResult(path=path, error=classify_error(path, exc))
    with os.fdopen(fd, "rb") as fp:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise DecodeError(path, "not_a_file", "not a regular file (device, FIFO or socket)")
            started = time.process_time()
            digest = hashlib.file_digest(fp, "sha256").hexdigest()
            hashed = time.process_time()
        except DecodeError as exc:
            return FileResult(path=path, error=exc)
        except OSError as exc:
            return FileResult(path=path, error=classify_error(path, exc))
        facts = dict(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, content_hash=digest,
                     hash_seconds=hashed - started)
        if is_known_hash(digest, recipes(path)):
            return FileResult(**facts)
        try:
            if st.st_size == 0:
                raise DecodeError(path, "empty_file", "the file is empty (0 bytes)")
            fp.seek(0)
            decoded = decode_image(fp, px_size, raw_format=_raw_format(path))
            return FileResult(**facts, decoded=decoded, decode_seconds=time.process_time() - hashed)
        except DecodeError as exc:
            return FileResult(**facts, error=exc)
        except UnidentifiedImageError as exc:
            return FileResult(**facts, error=_unsupported(path, fp) or classify_error(path, exc))
        except Exception as exc:  # every decoder failure becomes a recorded, typed error
            return FileResult(**facts, error=classify_error(path, exc))


def _unsupported(path: str, fp) -> DecodeError | None:
    """A HEIF file this process cannot read (pillow-heif missing or broken): say so, with the fix."""
    problem = formats.heif_problem()
    if problem is None:
        return None
    fp.seek(0)
    if not formats.is_heif(fp.read(12)):
        return None
    return DecodeError(path, "unsupported_format", formats.INSTALL_HEIF.format(why=problem))


def classify_error(path: str, exc: BaseException) -> DecodeError:
    """Turn whatever Pillow or the OS raised into a short label and a human reason."""
    if isinstance(exc, Image.DecompressionBombError):
        return DecodeError(path, "decompression_bomb", f"refused: too many pixels to decode safely ({exc})")
    if isinstance(exc, PermissionError):
        return DecodeError(path, "permission_denied", "permission denied: imgindex may not read this file")
    if isinstance(exc, IsADirectoryError):
        return DecodeError(path, "not_a_file", "this is a folder, not a file")
    if isinstance(exc, UnidentifiedImageError):
        return DecodeError(path, "not_an_image", "not an image Pillow can read (unknown or damaged format)")
    text = str(exc)
    if "truncated" in text.lower() or "end of file" in text.lower() or isinstance(exc, EOFError):
        return DecodeError(path, "truncated", f"the image is truncated (incomplete file): {text}")
    if type(exc).__name__ in ("LibRawFileUnsupportedError", "LibRawRequestForNonexistentImageError"):
        return DecodeError(path, "not_an_image", f"not a RAW file LibRaw can read ({type(exc).__name__})")
    if type(exc).__name__.startswith("LibRaw"):  # LibRawIOError: truncated, damaged, or no RAW at all
        return DecodeError(path, "corrupt", f"LibRaw cannot read it: a damaged or truncated RAW file, or not a RAW"
                                            f" file ({type(exc).__name__}: {text})")
    if isinstance(exc, MemoryError):
        return DecodeError(path, "too_large", "not enough memory to decode this image")
    if isinstance(exc, OSError) and exc.errno in (errno.EIO, errno.ENXIO, errno.ELOOP):
        return DecodeError(path, "io_error", f"the file could not be read: {exc.strerror or text}")
    if isinstance(exc, (OSError, SyntaxError, ValueError, zlib.error, IndexError, KeyError, TypeError)):
        return DecodeError(path, "corrupt", f"the image data is damaged: {type(exc).__name__}: {text}")
    return DecodeError(path, "decode_failed", f"decoding failed: {type(exc).__name__}: {text}")


def decode_path(path: str, px_size: int) -> DecodedImage:
    """Decode one file (no hashing, no index): for tests, benchmarks and one-off use."""
    with open(path, "rb") as fp:
        return decode_image(fp, px_size, raw_format=_raw_format(path))


def _raw_format(path: str) -> str | None:
    """'DNG', 'CR2'... for a camera RAW file this process can read; None for everything else."""
    if formats.is_raw(path) and formats.raw_available():
        return os.path.splitext(path)[1][1:].upper()
    return None


def thumbnail_jpeg(path: str, size: int, quality: int = 75) -> bytes:
    """A JPEG at most ``size`` px on its longer side, upright (EXIF applied), alpha on white: for the report.

    Raises OSError or a Pillow error for a file that cannot be read; callers show it as such.
    A browser shows no RAW: its picture is the one its tensor is made from (``raw.open_raw``).
    """
    if _raw_format(path) is not None:
        with open(path, "rb") as fp:
            picture = raw.open_raw(fp, size, size)
        return _thumbnail_bytes(picture.image, picture.orientation, size, quality)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (size, size))
            im.load()
            return _thumbnail_bytes(_normalise_mode(im), _orientation(im), size, quality)


def _thumbnail_bytes(small: Image.Image, orientation: int, size: int, quality: int) -> bytes:
    small.thumbnail((size, size), RESAMPLE)
    if orientation in _ORIENTATION:
        small = small.transpose(_ORIENTATION[orientation])
    if small.mode in ("LA", "RGBA"):
        background = Image.new("RGBA", small.size, WHITE)
        small = Image.alpha_composite(background, small.convert("RGBA"))
    out = io.BytesIO()
    small.convert("RGB").save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
