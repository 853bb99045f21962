"""Where a TIFF-based RAW's data ends, read from its IFDs (``scan.tiff``): exact on real layouts,
and never a crash on bytes cut or damaged anywhere."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imgindex.scan import tiff

from test_raw import make_dng, photo

SMALL = photo()[:64, :96]


def dng_bytes(tmp_path_factory, preview: bool) -> bytes:
    path = tmp_path_factory.mktemp("dng") / "a.dng"
    return make_dng(SMALL, path, preview=Image.fromarray(SMALL) if preview else None).read_bytes()


def test_the_data_of_a_dng_ends_where_its_mosaic_ends(tmp_path_factory):
    with_preview = dng_bytes(tmp_path_factory, True)
    assert tiff.data_end(with_preview) == len(with_preview)  # SubIFD mosaic, last in the file
    plain = dng_bytes(tmp_path_factory, False)  # pidng: one IFD, tiles
    mosaic = SMALL.shape[0] * SMALL.shape[1] * 2
    assert tiff.data_end(plain) >= mosaic and tiff.data_end(plain) <= len(plain)


def test_a_big_endian_tiff_with_a_strip_beyond_its_end_and_a_loop_of_ifds():
    # MM, one IFD pointing at itself as the next one: StripOffsets 100, StripByteCounts 50
    entries = [(273, 4, 1, 100), (279, 4, 1, 50)]
    ifd = struct.pack(">H", len(entries)) + b"".join(struct.pack(">HHLL", *e) for e in entries) + struct.pack(">L", 8)
    data = b"MM\0*" + struct.pack(">L", 8) + ifd
    assert tiff.data_end(data) == 150 > len(data)
    assert tiff.data_end(b"not a tiff at all") is None
    assert tiff.data_end(b"\xff\xd8\xff\xe0" + bytes(20)) is None  # a JPEG


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8))
def test_bytes_cut_or_damaged_anywhere_give_an_answer_never_an_error(tmp_path_factory, cut, flips):
    data = bytearray(DATA.setdefault("dng", dng_bytes(tmp_path_factory, True)))
    for at, value in flips:
        if at < len(data):
            data[at] = value
    end = tiff.data_end(bytes(data[:cut]))
    assert end is None or isinstance(end, int)
    if not flips and cut < len(data):
        assert end is None or end > cut  # a cut file is never taken for whole


DATA: dict[str, bytes] = {}
