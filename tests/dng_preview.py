"""DNGs as cameras write them: a JPEG preview in the first IFD, the Bayer mosaic in a SubIFD.

pidng writes the mosaic alone (its SubIFD tag does not encode), so this writes the TIFF structure
itself: little-endian, one strip per image, every value after its IFD. LibRaw reads both parts
(``rawpy``: ``extract_thumb`` and ``postprocess``)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10
_PACK = {BYTE: "B", SHORT: "H", LONG: "L", RATIONAL: "L", SRATIONAL: "l"}
IDENTITY = [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)]


def write_dng(bayer: np.ndarray, path: Path, orientation: int, preview_jpeg: bytes, preview_size: tuple[int, int]):
    """A 12-bit RGGB DNG of ``bayer`` (uint16), whose first IFD is the JPEG preview, with its Orientation tag."""
    h, w = bayer.shape
    camera = {271: (ASCII, "imgindex"), 272: (ASCII, "test"), 274: (SHORT, [orientation]),
              50706: (BYTE, [1, 4, 0, 0]), 50707: (BYTE, [1, 2, 0, 0]), 50778: (SHORT, [21]),
              50721: (SRATIONAL, IDENTITY), 50728: (RATIONAL, [(1, 1)] * 3)}
    pw, ph = preview_size
    first = {**camera, 254: (LONG, [1]), 256: (LONG, [pw]), 257: (LONG, [ph]), 258: (SHORT, [8, 8, 8]),
             259: (SHORT, [7]), 262: (SHORT, [6]), 277: (SHORT, [3]), 278: (LONG, [ph]),
             279: (LONG, [len(preview_jpeg)])}
    mosaic = {254: (LONG, [0]), 256: (LONG, [w]), 257: (LONG, [h]), 258: (SHORT, [16]), 259: (SHORT, [1]),
              262: (SHORT, [32803]), 277: (SHORT, [1]), 278: (LONG, [h]), 279: (LONG, [bayer.nbytes]),
              33421: (SHORT, [2, 2]), 33422: (BYTE, [0, 1, 1, 2]), 50714: (LONG, [0]), 50717: (LONG, [4095])}
    # as cameras lay it out: the IFDs first, then the preview, then the mosaic (a truncated copy
    # loses the mosaic first); an IFD's length does not depend on the offsets it holds
    first[273], first[330], mosaic[273] = (LONG, [0]), (LONG, [0]), (LONG, [0])
    sub_at = 8 + len(_ifd(first, 0))
    preview_at = sub_at + len(_ifd(mosaic, 0))
    mosaic_at = preview_at + len(preview_jpeg) + len(preview_jpeg) % 2
    first[273], first[330], mosaic[273] = (LONG, [preview_at]), (LONG, [sub_at]), (LONG, [mosaic_at])
    data = (b"II*\0" + struct.pack("<L", 8) + _ifd(first, 8) + _ifd(mosaic, sub_at)
            + preview_jpeg + b"\0" * (len(preview_jpeg) % 2) + bayer.astype("<u2").tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _ifd(tags: dict, at: int) -> bytes:
    """One IFD at offset ``at`` (its tags in order, then its values longer than 4 bytes)."""
    entries = sorted(tags.items())
    values_at = at + 2 + 12 * len(entries) + 4
    body, values = bytearray(struct.pack("<H", len(entries))), bytearray()
    for tag, (kind, value) in entries:
        if kind == ASCII:
            raw, count = value.encode() + b"\0", len(value) + 1
        else:
            flat = [x for v in value for x in (v if isinstance(v, tuple) else (v,))]
            raw, count = struct.pack(f"<{len(flat)}{_PACK[kind]}", *flat), len(value)
        if len(raw) <= 4:
            body += struct.pack("<HHL", tag, kind, count) + raw.ljust(4, b"\0")
        else:
            body += struct.pack("<HHLL", tag, kind, count, values_at + len(values))
            values += raw + b"\0" * (len(raw) % 2)
    return bytes(body + struct.pack("<L", 0) + values)
