"""Camera RAW file -> the picture its tensor is made from (a Pillow image), and the recipe used.

Flows in: an open RAW file (rawpy, LibRaw) and the smallest side the tensor needs. Flows out: a
``RawPicture``, which ``decode`` resizes as it does any picture.

Two recipes, recorded per image in the ``decoder`` column, so neither is taken for the other:
- ``libraw-preview-v1``: the JPEG (or bitmap) preview the camera embedded, when it agrees with the
  RAW. It is what the camera showed, it is rendered as the camera's own JPEG of the shot is (so
  the two are one group), and it decodes ten times faster than a demosaic. It is used only when
  the RAW's own data is whole (a copy cut short keeps its preview and loses the sensor's data:
  such a RAW must never be kept over a whole JPEG of it), and when it agrees: it is large
  enough (``need`` a side, the fidelity of a JPEG draft), has the RAW's aspect ratio (within
  ``ASPECT_SLACK``), is stored unturned (a turned one fails the aspect check), and has no
  turn of its own other than the RAW's. The RAW's turn is then applied once, to the tensor.
- ``libraw-demosaic-v1``: LibRaw's demosaic (camera white balance, sRGB, its own turn applied),
  half size when half the short side is still ``HALF_SIZE_FROM`` times the tensor. For a RAW
  without a preview, with a thumbnail too small, cropped or turned, or one that fails to decode.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

from imgindex.scan import tiff

RAW_PREVIEW = "libraw-preview-v1"
RAW_DEMOSAIC = "libraw-demosaic-v1"
RECIPES = (RAW_PREVIEW, RAW_DEMOSAIC)
HALF_SIZE_FROM = 6  # half-size demosaic when half the short side is >= 6x the tensor (a 24-MP sensor: yes)
ASPECT_SLACK = 0.02  # a preview within 2% of the RAW's aspect ratio shows the whole frame (1616x1080 of 6048x4024)

# LibRaw's flip (bit 2: transpose, bit 1: rows, bit 0: columns) -> the EXIF orientation it came from
_EXIF_OF_FLIP = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


@dataclass(frozen=True)
class RawPicture:
    """``image`` loaded, with ``box`` the region of it a resize reads (a JPEG draft's) or None;
    ``orientation`` (EXIF) still to apply to the tensor; ``size`` the file's full picture size in
    ``image``'s frame (the sensor's visible area); ``recipe`` one of ``RECIPES``."""

    image: Image.Image
    box: tuple[float, float, float, float] | None
    orientation: int
    size: tuple[int, int]
    recipe: str


def open_raw(fp, need: int, px_size: int) -> RawPicture:
    """The RAW's picture for a tensor of ``px_size`` whose resize wants ``need`` px a side.

    Raises what LibRaw raises for a file it cannot read, and ``Image.DecompressionBombError`` for
    a sensor too large to decode safely (from the header, before any decoding)."""
    import rawpy

    data = fp.read()
    with rawpy.imread(io.BytesIO(data)) as raw:
        width, height = raw.sizes.width, raw.sizes.height  # the visible area, before any turn
        if width * height > Image.MAX_IMAGE_PIXELS * 2:
            raise Image.DecompressionBombError(f"{width}x{height} pixels")
        orientation = _EXIF_OF_FLIP.get(raw.sizes.flip, 1)
        preview = _preview(raw, (width, height), orientation, need) if _whole(data, raw) else None
        if preview is not None:
            image, box = preview
            return RawPicture(image, box, orientation, (width, height), RAW_PREVIEW)
        half = min(width, height) // 2 >= HALF_SIZE_FROM * px_size
        image = Image.fromarray(raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8))
    turned = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return RawPicture(image, None, 1, turned, RAW_DEMOSAIC)


def _whole(data: bytes, raw) -> bool:
    """The sensor's data is all in the file: its TIFF strips end within it (read from the IFDs), or,
    for a RAW that is not TIFF-based (CR3, RAF), LibRaw unpacks it (which the demosaic would do)."""
    import rawpy

    end = tiff.data_end(data)
    if end is not None:
        return end <= len(data)
    try:
        raw.unpack()
    except rawpy.LibRawError:  # cut short or damaged: the demosaic reports it
        return False
    return True


def _preview(raw, size: tuple[int, int], orientation: int, need: int):
    """(image, draft box) of the embedded preview when it agrees with the RAW, else None."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, MemoryError):  # no preview, or one LibRaw cannot hand out
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if thumb.format == rawpy.ThumbFormat.BITMAP:
                im = Image.fromarray(thumb.data)
            else:
                im = Image.open(io.BytesIO(thumb.data))
                if im.format != "JPEG":
                    return None
            if not _agrees(im.size, size, need):  # from the header: nothing decoded yet
                return None
            drafted = im.draft("RGB", (need, need)) if im.format == "JPEG" else None
            im.load()
            own = _own_orientation(im)
            image = im.convert("RGB")
    except Exception:  # a damaged preview: the demosaic reads the RAW itself
        return None
    if own not in (1, orientation):
        return None
    return image, None if drafted is None else drafted[1]


def _own_orientation(im: Image.Image) -> int:
    """The preview's own EXIF orientation (1: none); 0 when its EXIF is broken (it may say anything)."""
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:
        return 0


def _agrees(shown: tuple[int, int], size: tuple[int, int], need: int) -> bool:
    """A preview of ``shown`` px is large enough, and shows the RAW's whole frame unturned."""
    w, h = shown
    if min(w, h) < need or min(size) < 1:
        return False
    return abs((w / h) / (size[0] / size[1]) - 1) <= ASPECT_SLACK
