"""Pure: a TIFF-based file's bytes -> where its image data ends, from its IFDs alone.

Most camera RAW formats are TIFF inside (DNG, CR2, NEF, ARW, PEF, SRW, ORF, RW2): the header and
IFDs come first, the preview next, the sensor's data last. A copy cut short keeps its header and
its preview and loses the sensor's data, so LibRaw still opens it and hands out the preview.
``data_end`` tells whether every strip and tile the IFDs name lies within the file, without
decoding any: ``raw`` uses the preview of a RAW only when its data is whole.
"""

from __future__ import annotations

import struct

# TIFF magic numbers: 42, Olympus ORF ("RO", "SR"), Panasonic RW2 (0x55)
_MAGIC = {42, 0x4F52, 0x5352, 0x55}
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_DATA = ((273, 279), (324, 325))  # (StripOffsets, StripByteCounts), (TileOffsets, TileByteCounts)
_SUB_IFDS = (330, 34665)  # SubIFDs, the EXIF IFD
MAX_IFDS = 64  # a damaged or hostile file may chain its IFDs in a loop


def data_end(data: bytes) -> int | None:
    """The largest offset + byte count of any strip or tile in the file's IFDs (IFD chain and
    SubIFDs), or None when the file is not TIFF-based or an IFD names data without its size."""
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return None
    order = "<" if data[:2] == b"II" else ">"
    if struct.unpack_from(order + "H", data, 2)[0] not in _MAGIC:
        return None
    todo, seen, end = [struct.unpack_from(order + "L", data, 4)[0]], set(), 0
    while todo:
        at = todo.pop()
        if at in seen or len(seen) >= MAX_IFDS:
            continue
        seen.add(at)
        tags, following = _ifd(data, order, at)
        if tags is None:
            return None
        for offsets_tag, counts_tag in _DATA:
            offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
            if not offsets:
                continue
            if counts is None or len(counts) != len(offsets) or 0 in counts:
                return None
            end = max(end, max(o + c for o, c in zip(offsets, counts)))
        todo += [o for tag in _SUB_IFDS for o in tags.get(tag, ())] + ([following] if following else [])
    return end


def _ifd(data: bytes, order: str, at: int):
    """({tag: integer values} of the tags this module reads, next IFD's offset), or (None, 0) when
    the IFD lies outside the file."""
    if at + 2 > len(data):
        return None, 0
    count = struct.unpack_from(order + "H", data, at)[0]
    if at + 2 + 12 * count + 4 > len(data):
        return None, 0
    tags = {}
    for i in range(count):
        tag, kind, n, value = struct.unpack_from(order + "HHL4s", data, at + 2 + 12 * i)
        if tag not in (273, 279, 324, 325, *_SUB_IFDS) or kind not in (3, 4, 13):
            continue
        size = _TYPE_SIZE[kind] * n
        raw = value if size <= 4 else data[_offset(order, value):_offset(order, value) + size]
        if len(raw) < size:
            return None, 0
        tags[tag] = struct.unpack_from(f"{order}{n}{'H' if kind == 3 else 'L'}", raw)
    return tags, struct.unpack_from(order + "L", data, at + 2 + 12 * count)[0]


def _offset(order: str, value: bytes) -> int:
    return struct.unpack(order + "L", value)[0]
