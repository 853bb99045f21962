"""Search keys made beside the decode, in the workers: the very rows a search would make from the
stored tensors, for every image of a batch in its own place; byte copies share their source's;
new images get their point in the kept point index as they are written; and searches on keys
made so find what searches on keys made at search time find."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from imgindex import Index
from imgindex.compare import plan, run, signals, tone

from PIL import Image

from helpers import photo_like, write_image

KEY_TABLES = {"search_keys": "mean, ikey, coarse, orbits, sample", "tone_keys": "recipe, coarse",
              "rank_keys": "recipe, coarse"}
N = 48  # more than reader.INLINE_BELOW: read by the worker processes, in batches of several files


def folder_of_photos(root, n=N, start=0):
    for i in range(start, start + n):
        size = (96, 72) if i % 3 else (72, 96)
        write_image(root / f"p{i:03d}.jpg", seed=i, size=size, quality=90)
        if i % 7 == 0:  # a brighter, flatter copy: a tone match, not a pixel one
            brighter = np.asarray(photo_like(i, size), dtype=np.float64) * 0.7 + 60
            Image.fromarray(brighter.astype(np.uint8)).save(root / f"p{i:03d}b.png")
    for i in range(start, start + n, 5):  # flat pictures, of a size of their own: a bucket with no tone at all
        Image.new("RGB", (80, 60), (i, 90, 200)).save(root / f"flat{i:03d}.png")
    return root


def rows(ix: Index) -> dict[str, dict[int, tuple]]:
    return {t: {r[0]: tuple(r[1:]) for r in ix.db.execute(f"SELECT image_id, {c} FROM {t} ORDER BY image_id")}
            for t, c in KEY_TABLES.items()}


def made_at_search_time(ix: Index, px: int = 50) -> dict[str, dict[int, tuple]]:
    """The rows the search makes from the stored tensors, the keys made at scan time deleted first."""
    ids = np.array([r[0] for r in ix.db.execute("SELECT id FROM images ORDER BY id")])
    with ix.db.atomic():
        for table in KEY_TABLES:
            ix.db.execute(f"DELETE FROM {table}")
    plan.ensure_search_keys(ix.db, ids, px)
    tone.ensure_keys(ix.db, ids, px)
    if px <= signals.RANK_MAX_PX:
        tone.ensure_keys(ix.db, ids, px, rank=True)
    return rows(ix)


@pytest.mark.parametrize("px", [50, 16, 110])  # 16: blocks of unequal sizes; 110: too large for rank
def test_the_keys_made_by_the_workers_are_the_search_time_keys_of_each_image(tmp_path, px):
    root = folder_of_photos(tmp_path / "photos")
    with Index(tmp_path / "index.db") as ix:
        report = ix.scan([root], processes=2, px_size=px)
        assert report.workers == 2 and report.decoded > N
        scanned = rows(ix)
        n = ix.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        assert len(scanned["search_keys"]) == len(scanned["tone_keys"]) == n  # every image got its keys in the scan
        assert len(scanned["rank_keys"]) == (n if px <= signals.RANK_MAX_PX else 0)
        assert sum(1 for v in scanned["tone_keys"].values() if v[1] == b"") >= N // 5  # flat: no tone
        assert made_at_search_time(ix, px) == scanned


def test_a_byte_copy_shares_the_keys_of_its_source_and_keeps_a_point(tmp_path):
    root = folder_of_photos(tmp_path / "photos")
    with Index(tmp_path / "index.db") as ix:
        ix.scan([root], processes=2)
        run.search(ix.db, str(ix.path), similarity="similar", algorithm="chunked")  # fits the point index
        assert ix.db.execute("SELECT COUNT(*) FROM search_points").fetchone()[0] == \
            ix.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        shutil.copy(root / "p001.jpg", root / "copy of p001.jpg")
        folder_of_photos(root, n=40, start=N)
        report = ix.scan([root], processes=2)
        assert report.reused == 1 and report.workers == 2
        ids = dict(ix.db.execute("SELECT path, id FROM images"))
        copy, source = ids[str(root / "copy of p001.jpg")], ids[str(root / "p001.jpg")]
        scanned = rows(ix)
        for table in KEY_TABLES:
            assert scanned[table][copy] == scanned[table][source]
        kept = {r[0]: r[1:] for r in ix.db.execute("SELECT image_id, cell, coords FROM search_points")}
        assert set(kept) == set(ids.values())  # the new images and the copy have their points
        assert kept[copy] == kept[source]
        # ... the very points the search would have kept
        from imgindex.compare import points
        new = np.array(sorted(ids.values()))[-40:]
        with ix.db.atomic():
            ix.db.execute("DELETE FROM search_points WHERE image_id IN (SELECT value FROM json_each(?))",
                          [str(new.tolist())])
        orbits = np.stack([np.frombuffer(scanned["search_keys"][i][3], np.float32) for i in new.tolist()])
        points.add(ix.db, 50, new, orbits)
        assert {r[0]: r[1:] for r in ix.db.execute("SELECT image_id, cell, coords FROM search_points")} == kept


def test_searches_on_keys_made_in_the_scan_find_what_searches_on_keys_made_then_find(tmp_path):
    root = folder_of_photos(tmp_path / "photos")
    with Index(tmp_path / "index.db") as ix:
        ix.scan([root], processes=2)
        run.search(ix.db, str(ix.path), similarity="similar", algorithm="chunked")
        folder_of_photos(root, n=30, start=N)
        for i in range(N, N + 30, 4):  # new copies of old pictures, found by the incremental search
            write_image(root / f"again{i}.png", seed=i - N, size=(96, 72) if (i - N) % 3 else (72, 96))
        ix.scan([root], processes=2)
        incremental = run.search(ix.db, str(ix.path), similarity="similar", algorithm="chunked")
        assert incremental.new_images > 30 and incremental.base_search_id is not None  # the point index's way
        found = set(ix.db.execute("SELECT image_a, image_b, signal FROM pairs").fetchall())
        made_at_search_time(ix)
        ix.db.execute("DELETE FROM search_points")
        ix.db.execute("DELETE FROM search_space")
        full = ix.search(similarity="similar", full=True)
        assert full.pairs == incremental.pairs
        assert set(ix.db.execute("SELECT image_a, image_b, signal FROM pairs").fetchall()) == found
        assert any(s == "tone" for _, _, s in found) and any(s == "pixels" for _, _, s in found)
