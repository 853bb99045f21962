"""difPy's ``search`` takes reference folders: their images are the keepers, never lower_quality,
and ``move_to`` leaves every one of them where it is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import imgindex

from helpers import inventory, photo_like


def same_pixels(path: Path, seed: int, level: int) -> str:
    """One picture (by seed) as a PNG at a zlib level: identical pixels (MSE 0), different bytes and sizes.

    Level 0 makes the largest file, which the keeper rule (resolution, size, path) would keep."""
    path.parent.mkdir(parents=True, exist_ok=True)
    photo_like(seed, (96, 72)).save(path, compress_level=level)
    return str(path)


@pytest.fixture
def folder(tmp_path) -> dict:
    """archive/ holds originals; new/ holds larger copies of them, and a pair of its own."""
    root = tmp_path / "photos"
    p = {}
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        p[f"archive/{name}"] = same_pixels(root / "archive" / f"{name}.png", seed, 9)
        p[f"new/{name}"] = same_pixels(root / "new" / f"{name}.png", seed, 0)
    # two archived copies of one picture (never compared with each other) and a new copy of it: one group
    p["archive/h"] = same_pixels(root / "archive" / "h.png", 4, 9)
    p["archive/old/h"] = same_pixels(root / "archive" / "old" / "h.png", 4, 5)
    p["new/h"] = same_pixels(root / "new" / "h.png", 4, 0)
    # byte copies inside the archive: a duplicate pair, but both reference images
    p["archive/f"] = same_pixels(root / "archive" / "f.png", 5, 9)
    (root / "archive" / "f-again.png").write_bytes(Path(p["archive/f"]).read_bytes())
    p["archive/f-again"] = str(root / "archive" / "f-again.png")
    # a pair only in new/: the keeper rule decides as before
    p["new/d"] = same_pixels(root / "new" / "d.png", 6, 9)
    p["new/d-copy"] = same_pixels(root / "new" / "d-copy.png", 6, 0)
    return {"root": root, "archive": root / "archive", "new": root / "new", "p": p}


def test_reference_archive_images_are_the_keepers_and_move_to_leaves_them(folder, tmp_path):
    p, archive = folder["p"], folder["archive"]
    archived = {path for key, path in p.items() if key.startswith("archive/")}
    dif = imgindex.build(str(folder["root"]), show_progress=False, processes=1)
    try:
        plain = imgindex.search(dif, show_progress=False, processes=1)
        # without reference folders the rule keeps the larger new copies and would act on archived files
        assert {p["new/a"], p["new/b"], p["new/c"], p["new/h"]} <= set(plain.result)
        assert archived & set(plain.lower_quality)
        assert dif.index.decisions("reference") == []  # reference=None adds none

        se = imgindex.search(dif, reference=archive, show_progress=False, processes=1)
        h_keeper = max(p["archive/h"], p["archive/old/h"], key=os.path.getsize)  # the rule, among the two kept
        assert set(se.result) == {p["archive/a"], p["archive/b"], p["archive/c"], h_keeper, p["new/d-copy"]}
        assert {m for m, _ in se.result[p["archive/a"]]} == {p["new/a"]}
        other_h = p["archive/old/h"] if h_keeper == p["archive/h"] else p["archive/h"]
        assert {m for m, _ in se.result[h_keeper]} == {p["new/h"], other_h}  # kept, though not a key
        acted_on = sorted([p["new/a"], p["new/b"], p["new/c"], p["new/h"], p["new/d"]])
        assert sorted(se.lower_quality) == acted_on
        assert not archived & set(se.lower_quality)
        found = se.stats["process"]["search"]["matches_found"]
        assert found["groups"] == 5 and found["files"] == 11  # the kept archive/old/h or archive/h counts too
        assert [d.paths[0] for d in dif.index.decisions("reference")] == [str(archive)]

        before = inventory(archive)
        dest = tmp_path / "moved"
        report = se.move_to(dest)
        assert inventory(archive) == before  # every archived file in place, unchanged
        assert sorted(o.source for o in report.outcomes) == acted_on
        assert all(o.outcome == "done" for o in report.outcomes)
        assert sorted(os.listdir(folder["new"])) == ["d-copy.png"]
        assert all(Path(path).is_file() and Path(path).is_relative_to(dest) for path in se.lower_quality)
    finally:
        dif.close()


def test_reference_takes_a_list_of_folders_and_refuses_one_outside_the_build(folder, tmp_path):
    p = folder["p"]
    vault = folder["root"] / "vault"
    p["vault/d"] = same_pixels(vault / "d.png", 6, 5)
    dif = imgindex.build(str(folder["root"]), show_progress=False, processes=1)
    try:
        se = imgindex.search(dif, reference=[str(folder["archive"]), vault], show_progress=False, processes=1)
        assert p["vault/d"] in se.result  # the smallest of the three d's, kept for its folder
        assert {p["new/d"], p["new/d-copy"]} <= set(se.lower_quality)
        assert not {path for key, path in p.items() if key.split("/")[0] in ("archive", "vault")} & set(
            se.lower_quality)
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        with pytest.raises(imgindex.ImgIndexError, match="not under a scanned folder"):
            imgindex.search(dif, reference=outside, show_progress=False, processes=1)
    finally:
        dif.close()
