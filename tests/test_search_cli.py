"""`imgindex search` and `find`, and the difPy-shaped Python API, on real image files."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest
from PIL import Image

import imgindex

from helpers import invoke, photo_like, write_image


@pytest.fixture
def dupes(tmp_path):
    """Two folders: originals, and copies (byte copy, re-encode, EXIF-turned) of two of them."""
    root = tmp_path / "dupes"
    for i in range(4):
        write_image(root / "originals" / f"o{i}.png", seed=i, size=(120, 90))
    img0 = photo_like(0, (120, 90))
    (root / "copies").mkdir()
    (root / "copies" / "o0-copy.png").write_bytes((root / "originals" / "o0.png").read_bytes())
    img0.save(root / "copies" / "o0-q95.jpg", quality=95)
    # same pixels, but an EXIF tag that has viewers show it turned 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    photo_like(1, (120, 90)).save(root / "copies" / "o1-turned.png", exif=exif)
    return root


def test_find_json_is_difpy_shaped(dupes, tmp_path):
    out = tmp_path / "out.json"
    result = invoke("find", dupes, "--db", tmp_path / "i.db", "--format", "json", "-o", out, "--similarity", "20")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    originals, copies = dupes / "originals", dupes / "copies"
    grouped = {keeper: sorted(p for p, _ in matches) for keeper, matches in data.items()}
    assert grouped == {
        str(copies / "o0-copy.png"): sorted([str(originals / "o0.png"), str(copies / "o0-q95.jpg")]),
        str(copies / "o1-turned.png"): [str(originals / "o1.png")],
    } or grouped == {
        str(originals / "o0.png"): sorted([str(copies / "o0-copy.png"), str(copies / "o0-q95.jpg")]),
        str(copies / "o1-turned.png"): [str(originals / "o1.png")],
    }
    mses = {p: mse for matches in data.values() for p, mse in matches}
    assert 0 < mses[str(copies / "o0-q95.jpg")] <= 20
    assert "matching pairs in 2 groups" in result.stderr


def test_search_duplicates_table_and_csv(dupes, tmp_path):
    db = tmp_path / "i.db"
    assert invoke("scan", dupes, "--db", db, "-q").returncode == 0
    table = invoke("search", "--db", db)
    assert table.returncode == 0, table.stderr
    assert "keep" in table.stdout and "o0-copy.png" in table.stdout and "o0.png" in table.stdout
    assert "o0-q95.jpg" not in table.stdout  # not identical: not a duplicate
    # the EXIF copy is the keeper (same pixel count, larger file); o1.png is it turned back 270 degrees
    assert "keep  " + str(dupes / "copies" / "o1-turned.png") in table.stdout and "turned 270°" in table.stdout
    rows = list(csv.DictReader(io.StringIO(invoke("search", "--db", db, "--format", "csv").stdout)))
    assert {r["path"].rsplit("/", 1)[1] for r in rows} == {"o0.png", "o0-copy.png", "o1.png", "o1-turned.png"}
    assert sum(r["is_keeper"] == "1" for r in rows) == 2
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM match_pairs").fetchone() == (2,)
    assert conn.execute("SELECT count(DISTINCT group_id) FROM match_groups").fetchone() == (2,)
    no_rotate = invoke("search", "--db", db, "--no-rotate", "--format", "csv").stdout
    assert "o1-turned" not in no_rotate


def test_search_before_any_scan_and_bad_similarity(tmp_path):
    result = invoke("search", "--db", tmp_path / "empty.db", "--similarity", "nearly")
    assert result.returncode == 1 and "similarity must be" in result.stderr and "Traceback" not in result.stderr
    result = invoke("search", "--db", tmp_path / "empty.db", "--in-folder")
    assert result.returncode == 1 and "scan some folders first" in result.stderr


def test_difpy_api_in_one_line(dupes):
    dif = imgindex.build(str(dupes), show_progress=False, processes=1)
    se = imgindex.search(dif, similarity="duplicates", show_progress=False, processes=1)
    assert len(se.result) == 2
    assert sorted(p.rsplit("/", 1)[1] for p in se.lower_quality) == sorted(
        p.rsplit("/", 1)[1] for p in [m for ms in se.result.values() for m, _ in ms]
    )
    assert se.stats["process"]["build"]["total_files"]["count"] == 7
    # difPy's counts (matches at MSE 0, and above it), imgindex's beside them
    assert se.stats["process"]["search"]["matches_found"] == {"duplicates": 2, "similar": 0, "files": 4, "groups": 2,
                                                              "pairs": 2}
    nested = imgindex.search(imgindex.build(str(dupes / "originals"), str(dupes / "copies"), in_folder=True,
                                            show_progress=False, processes=1), show_progress=False, processes=1)
    assert nested.result == {}  # each folder on its own: the duplicates are across folders
    path = dif.index.path
    dif.close()
    assert not path.exists()  # db=None: the temporary index is gone
