"""The incremental indexer: what a first scan stores, and what each kind of change costs later."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3

import numpy as np
import pytest

from imgindex import Index, SettingsMismatchError
from imgindex.scan.decode import DECODER
from imgindex.scan.reader import INLINE_BELOW

from helpers import mse, tensor_of, write_image


def rows(index: Index) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in index.db.execute("SELECT path, id, size, mtime_ns, content_hash, indexed_at FROM images")
    }


def test_first_scan_stores_facts_and_tensors(index, photos):
    report = index.scan([photos], processes=1)
    assert (report.status, report.seen, report.added, report.decoded, report.failed) == ("completed", 6, 6, 6, 0)
    got = index.db.execute(
        "SELECT path, folder, size, mtime_ns, width, height, format, content_hash, px_size, decoder FROM images"
    ).fetchall()
    assert len(got) == 6
    for path, folder, size, mtime_ns, width, height, fmt, digest, px, decoder in got:
        st = os.stat(path)
        assert path == os.path.abspath(path) and folder == os.path.dirname(path)
        assert (size, mtime_ns) == (st.st_size, st.st_mtime_ns)
        assert (width, height) == (96, 72)
        assert fmt == ("PNG" if path.endswith(".png") else "JPEG")
        assert digest == hashlib.sha256(open(path, "rb").read()).hexdigest()
        assert (px, decoder) == (50, DECODER)
    blobs = index.db.execute("SELECT image_id, px_size, length(tensor) FROM vectors").fetchall()
    assert len(blobs) == 6 and all(b[1:] == (50, 50 * 50 * 3) for b in blobs)
    # distinct pictures give distinct tensors
    tensors = [tensor_of(index, p) for p in sorted(r[0] for r in got)]
    assert min(mse(a, b) for i, a in enumerate(tensors) for b in tensors[i + 1 :]) > 50


def test_rescan_of_unchanged_tree_opens_no_file(index, photos):
    index.scan([photos], processes=1)
    before = rows(index)
    # Replace a file's bytes with garbage but keep its size and mtime: if the re-scan opened
    # it, it would fail to decode it or change its hash.
    victim = photos / "img0.jpg"
    st = victim.stat()
    victim.write_bytes(b"\0" * st.st_size)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    report = index.scan([photos], processes=1)
    assert (report.unchanged, report.decoded, report.added, report.failed, report.removed) == (6, 0, 0, 0, 0)
    assert rows(index) == before


def test_changed_file_is_read_again_under_a_new_id(index, photos):
    index.scan([photos], processes=1)
    target = photos / "img1.jpg"
    old_id = rows(index)[str(target)][0]
    old_tensor = tensor_of(index, target)
    write_image(target, seed=99, quality=92)
    report = index.scan([photos], processes=1)
    assert (report.updated, report.decoded, report.unchanged) == (1, 1, 5)
    new_id = rows(index)[str(target)][0]
    assert new_id > max(r[0] for r in rows(index).values() if r[0] != new_id)
    assert index.db.execute("SELECT count(*) FROM tensors WHERE image_id = ?", [old_id]).fetchone()[0] == 0
    assert mse(old_tensor, tensor_of(index, target)) > 50


def test_touched_file_keeps_its_row(index, photos):
    index.scan([photos], processes=1)
    target = photos / "img2.jpg"
    before = rows(index)[str(target)]
    os.utime(target, ns=(before[2] + 10**9, before[2] + 10**9))
    report = index.scan([photos], processes=1)
    assert (report.decoded, report.updated, report.unchanged) == (0, 0, 6)
    after = rows(index)[str(target)]
    assert after[0] == before[0] and after[2] == before[2] + 10**9


def test_removed_file_and_folder_leave_the_index(index, photos):
    index.scan([photos], processes=1)
    (photos / "img3.jpg").unlink()
    shutil.rmtree(photos / "sub")
    report = index.scan([photos], processes=1)
    assert report.removed == 2
    assert sorted(os.path.basename(p) for p in rows(index)) == ["img0.jpg", "img1.jpg", "img2.jpg", "img4.png"]
    assert index.db.execute("SELECT count(*) FROM tensors").fetchone()[0] == 4


def test_renamed_file_and_moved_folder_keep_their_rows(index, photos):
    index.scan([photos], processes=1)
    before = rows(index)
    os.rename(photos / "img0.jpg", photos / "renamed.jpg")
    os.rename(photos / "sub", photos / "moved-sub")
    report = index.scan([photos], processes=1)
    assert (report.moved, report.decoded, report.removed, report.added) == (2, 0, 0, 0)
    after = rows(index)
    assert after[str(photos / "renamed.jpg")][0] == before[str(photos / "img0.jpg")][0]
    assert after[str(photos / "moved-sub" / "img5.jpg")][0] == before[str(photos / "sub" / "img5.jpg")][0]
    folder = index.db.execute("SELECT folder FROM images WHERE path = ?", [str(photos / "moved-sub" / "img5.jpg")])
    assert folder.fetchone()[0] == str(photos / "moved-sub")


def test_byte_copy_reuses_the_stored_tensor(index, photos):
    index.scan([photos], processes=1)
    shutil.copy2(photos / "img4.png", photos / "sub" / "copy of img4.png")
    report = index.scan([photos], processes=1)
    assert (report.added, report.reused, report.decoded) == (1, 1, 0)
    assert np.array_equal(tensor_of(index, photos / "img4.png"), tensor_of(index, photos / "sub" / "copy of img4.png"))


def test_non_recursive_scan_reads_one_level_and_keeps_deeper_rows(index, photos):
    report = index.scan([photos], recursive=False, processes=1)
    assert report.added == 5 and str(photos / "sub" / "img5.jpg") not in rows(index)
    index.scan([photos], processes=1)
    report = index.scan([photos], recursive=False, processes=1)
    assert report.removed == 0 and str(photos / "sub" / "img5.jpg") in rows(index)


def test_px_size_is_fixed_for_an_index(index, photos, tmp_path):
    index.scan([photos], processes=1, px_size=24)
    assert len(tensor_of(index, photos / "img0.jpg")) == 24
    with pytest.raises(SettingsMismatchError, match="px_size=24"):
        index.scan([photos], processes=1, px_size=50)
    with Index(tmp_path / "other.db") as other:  # a new index takes any size
        other.scan([photos / "sub"], processes=1, px_size=10)
        assert tensor_of(other, photos / "sub" / "img5.jpg").shape == (10, 10, 3)


def test_tensors_of_another_decoder_are_redone_not_mixed(index, photos):
    index.scan([photos], processes=1)
    index.db.execute("UPDATE images SET decoder = 'older-decoder' WHERE path LIKE '%img1.jpg'")
    report = index.scan([photos], processes=1)
    assert (report.decoded, report.updated) == (1, 1)
    assert {r[0] for r in index.db.execute("SELECT DISTINCT decoder FROM images")} == {DECODER}


def test_scans_table_records_each_run(index, photos):
    first = index.scan([photos], processes=1)
    second = index.scan([photos], processes=1)
    got = index.db.execute(
        "SELECT id, status, roots, seen, added, unchanged, decoded, finished_at IS NOT NULL FROM scans ORDER BY id"
    ).fetchall()
    assert got == [
        (first.scan_id, "completed", f'["{photos}"]', 6, 6, 0, 6, 1),
        (second.scan_id, "completed", f'["{photos}"]', 6, 0, 6, 0, 1),
    ]


def test_worker_processes_give_the_same_tensors_as_inline(tmp_path):
    root = tmp_path / "many"
    for i in range(INLINE_BELOW + 8):
        write_image(root / f"p{i:03d}.jpg", seed=i, size=(64, 48), quality=90)
    with Index(tmp_path / "a.db") as a, Index(tmp_path / "b.db") as b:
        ra = a.scan([root], processes=1)
        rb = b.scan([root], processes=2)
        assert ra.added == rb.added == INLINE_BELOW + 8
        ta = {p: t for p, t in a.db.execute("SELECT path, tensor FROM images JOIN vectors ON id = image_id")}
        tb = {p: t for p, t in b.db.execute("SELECT path, tensor FROM images JOIN vectors ON id = image_id")}
        assert ta == tb


def test_readers_query_while_a_scan_writes(tmp_path):
    root = tmp_path / "many"
    for i in range(60):
        write_image(root / f"p{i:03d}.png", seed=i, size=(48, 48))
    db_path = tmp_path / "index.db"
    seen_counts = []

    with Index(db_path) as index:
        reader = sqlite3.connect(db_path, timeout=0.1)

        def progress(p):
            seen_counts.append(reader.execute("SELECT count(*) FROM images").fetchone()[0])

        import imgindex.scan.writer as indexer_module

        flush_every = indexer_module.FLUSH_EVERY_ROWS
        indexer_module.FLUSH_EVERY_ROWS = 10  # several commits within this small scan
        try:
            index.scan([root], processes=1, progress=progress)
        finally:
            indexer_module.FLUSH_EVERY_ROWS = flush_every
        assert index.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert seen_counts == sorted(seen_counts) and 0 < seen_counts[-1] <= 60
    assert len(set(seen_counts)) > 2  # the reader saw the index grow, batch by batch
    assert reader.execute("SELECT count(*) FROM images").fetchone()[0] == 60


def test_file_deleted_between_listing_and_decoding(index, tmp_path):
    root = tmp_path / "racy"
    for i in range(5):
        write_image(root / f"p{i}.jpg", seed=i)
    deleted = []

    def progress(p):
        if not deleted and p.decoded == 1:  # the folder is listed, one file read: delete the rest
            for i in range(1, 5):
                (root / f"p{i}.jpg").unlink()
                deleted.append(i)

    report = index.scan([root], processes=1, progress=progress)
    assert deleted and report.vanished == 4 and report.failed == 0
    assert index.count() == 1
    assert index.db.execute("SELECT count(*) FROM scan_errors").fetchone()[0] == 0


def test_vectors_stream_in_chunks_in_id_order(index, photos):
    index.scan([photos], processes=1)
    chunks = list(index.vectors(chunk_size=4))
    assert [len(c.ids) for c in chunks] == [4, 2]
    ids = np.concatenate([c.ids for c in chunks])
    assert list(ids) == sorted(r[0] for r in rows(index).values())
    for chunk in chunks:
        for image_id, tensor in zip(chunk.ids, chunk.tensors):
            path = index.db.execute("SELECT path FROM images WHERE id = ?", [int(image_id)]).fetchone()[0]
            assert np.array_equal(tensor, tensor_of(index, path))
    assert [len(c.ids) for c in index.vectors(chunk_size=4, min_id=int(ids[3]))] == [2]


def test_failed_file_is_recorded_not_retried_and_forgotten_when_fixed(index, tmp_path):
    root = tmp_path / "p"
    write_image(root / "good.jpg", seed=1)
    bad = root / "bad.jpg"
    bad.write_text("this is not a JPEG")
    report = index.scan([root], processes=1)
    assert report.failed == 1 and report.errors[0].error_class == "not_an_image"
    first_at = index.db.execute("SELECT at FROM scan_errors").fetchone()[0]
    report = index.scan([root], processes=1)  # unchanged bad file: counted, not re-read
    assert report.failed == 1 and report.errors == () and report.decoded == 0
    assert index.db.execute("SELECT at FROM scan_errors").fetchone()[0] == first_at
    write_image(bad, seed=2)  # the user repairs it
    report = index.scan([root], processes=1)
    assert report.added == 1 and index.count() == 2
    assert index.db.execute("SELECT count(*) FROM scan_errors").fetchone()[0] == 0
    bad.write_text("broken again")
    index.scan([root], processes=1)
    assert index.count() == 1  # the stale tensor went with the good content
    bad.unlink()
    index.scan([root], processes=1)
    assert index.db.execute("SELECT count(*) FROM scan_errors").fetchone()[0] == 0


def test_a_few_large_files_are_worth_starting_workers(tmp_path):
    """Work is counted in file sizes, not files: six 3-MB pictures (HEICs from a phone are this size)
    fan out to the worker processes, where six small ones would be decoded in this process."""
    import numpy as np
    from PIL import Image

    from imgindex.scan.reader import WORK_BYTES

    big, small = tmp_path / "big", tmp_path / "small"
    rng = np.random.default_rng(3)
    for k in range(6):
        big.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)).save(big / f"{k}.png")
        write_image(small / f"{k}.png", seed=k)
    assert all((big / f"{k}.png").stat().st_size > 5 * WORK_BYTES for k in range(6))
    with Index(tmp_path / "a.db") as index:
        assert index.scan([big], processes=2).workers == 2
    with Index(tmp_path / "b.db") as index:
        assert index.scan([small], processes=2).workers == 0


def test_many_copies_of_one_picture_cost_one_disk_check_each_and_moves_are_still_found(index, tmp_path,
                                                                                       monkeypatch):
    import imgindex.scan.writer as writer

    original = write_image(tmp_path / "lib" / "a" / "original.png", seed=3)
    index.scan(tmp_path / "lib", processes=1)
    for k in range(60):  # then 60 byte copies in 6 folders: each is known content when it is written
        folder = tmp_path / "lib" / f"copies{k % 6}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(original, folder / f"copy{k:02d}.png")
    checks = []
    real = os.path.lexists
    monkeypatch.setattr(writer.os.path, "lexists", lambda p: checks.append(p) or real(p))
    report = index.scan(tmp_path / "lib", processes=1)
    assert report.added == 60 and index.count() == 61
    assert len(checks) <= 61  # each row looked for on disk once; one check per earlier copy each time was 1,830
    (tmp_path / "lib" / "moved").mkdir()
    shutil.move(tmp_path / "lib" / "copies3" / "copy03.png", tmp_path / "lib" / "moved" / "copy03.png")
    shutil.rmtree(tmp_path / "lib" / "copies5")  # ten copies gone
    report = index.scan(tmp_path / "lib", processes=1)
    assert (report.moved, report.removed, index.count()) == (1, 10, 51)
    with sqlite3.connect(index.path) as conn:  # every row has its tensor, and the moved one its new path
        assert conn.execute("SELECT count(*) FROM images JOIN tensors ON tensors.image_id = images.id").fetchone()[0] == 51
        assert conn.execute("SELECT count(*) FROM images WHERE path LIKE '%/moved/copy03.png'").fetchone()[0] == 1
