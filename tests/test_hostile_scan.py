"""Bad input never stops a scan, never corrupts the index and never touches a user's file."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import pytest

from imgindex import Index

from helpers import as_nobody, inventory, write_image


def png_header_bomb(width: int, height: int) -> bytes:
    """A tiny PNG that claims width x height pixels: decoding it would need gigabytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def nasty(tmp_path) -> Path:
    root = tmp_path / "nasty"
    write_image(root / "good.jpg", seed=1)
    (root / "zero.jpg").write_bytes(b"")
    full = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (root / "text.jpg").write_text("I am a text file with an image extension\n")
    (root / "bomb.png").write_bytes(png_header_bomb(40000, 40000))
    (root / "notes.txt").write_text("not an image, not an error")
    os.symlink(root / "missing-target.jpg", root / "broken-link.jpg")
    (root / "loop").mkdir()
    os.symlink(root, root / "loop" / "back-to-root")
    outside = tmp_path / "outside"
    write_image(outside / "elsewhere.jpg", seed=2)
    os.symlink(outside / "elsewhere.jpg", root / "link-outside.jpg")
    os.mkfifo(root / "fifo.jpg")
    for i, name in enumerate(["with space.jpg", "ünïcødé 写真.jpg", "new\nline.jpg", "-leading-dash.jpg"]):
        write_image(root / "names" / name, seed=10 + i)
    deep = root
    for level in range(30):
        deep = deep / f"level{level:02d}"
    write_image(deep / "deep.jpg", seed=20)
    return root


def test_nasty_tree_is_scanned_with_clear_errors_and_no_loss(nasty, tmp_path):
    data = [nasty, tmp_path / "outside"]
    before = [inventory(d) for d in data]
    with Index(tmp_path / "index.db") as index:
        report = index.scan([nasty], processes=2)
        assert report.status == "completed"
        errors = {os.path.basename(e.path): e.error_class for e in report.errors}
        assert errors == {
            "zero.jpg": "empty_file",
            "truncated.jpg": "truncated",
            "text.jpg": "not_an_image",
            "bomb.png": "decompression_bomb",
        }
        stored = dict(index.db.execute("SELECT path, error_class FROM scan_errors"))
        assert {os.path.basename(p): c for p, c in stored.items()} == errors
        messages = [m for (m,) in index.db.execute("SELECT message FROM scan_errors")]
        assert all(len(m) > 15 for m in messages)  # a human reason, not a bare class name
        indexed = {os.path.relpath(p, nasty) for (p,) in index.db.execute("SELECT path FROM images")}
        assert indexed == {
            "good.jpg",
            "names/with space.jpg",
            "names/ünïcødé 写真.jpg",
            "names/new\nline.jpg",
            "names/-leading-dash.jpg",
            os.path.join(*[f"level{i:02d}" for i in range(30)], "deep.jpg"),
        }
        # skipped, not errors: 3 symlinks (broken, loop, outside the root), the FIFO, the .txt
        assert report.skipped == 5
        assert index.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        again = index.scan([nasty], processes=2)
        assert (again.decoded, again.failed, again.unchanged) == (0, 4, 6)
    assert [inventory(d) for d in data] == before


def test_name_that_is_not_utf8_is_skipped_with_a_reason(tmp_path):
    root = tmp_path / "bytes"
    root.mkdir()
    write_image(root / "fine.jpg", seed=1)
    bad_name = os.path.join(os.fsencode(root), b"caf\xe9.jpg")
    shutil.copy(root / "fine.jpg", bad_name)
    with Index(tmp_path / "index.db") as index:
        report = index.scan([root], processes=1)
        assert (report.added, report.skipped, report.failed) == (1, 1, 0)
    assert os.path.exists(bad_name)


def scan_unprivileged(db: Path, root: Path) -> dict:
    return as_nobody(_scan_summary, db, root)


def _scan_summary(db: Path, root: Path) -> dict:
    with Index(db) as index:
        r = index.scan([root], processes=1)
        return {
            "errors": {e.path: e.error_class for e in r.errors},
            "unlisted": [u.path for u in r.unlisted_folders],
            "count": index.count(),
        }


def test_unreadable_file_and_folder_are_reported_and_rows_kept():
    # a world-traversable place, so that an unprivileged user can reach it
    base = Path(tempfile.mkdtemp(prefix="imgindex-perm-"))
    try:
        os.chmod(base, 0o777)
        root = base / "photos"
        write_image(root / "ok.jpg", seed=1)
        write_image(root / "secret.jpg", seed=2)
        write_image(root / "private" / "inner.jpg", seed=3)
        write_image(root / "private" / "deeper" / "deep.jpg", seed=4)
        for dirpath, dirnames, filenames in os.walk(base):
            os.chmod(dirpath, 0o777)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o666)
        db = base / "index.db"
        first = scan_unprivileged(db, root)
        assert first["count"] == 4 and first["errors"] == {}
        os.chmod(root / "secret.jpg", 0o000)
        os.utime(root / "secret.jpg")  # changed: must be read again, and cannot be
        os.chmod(root / "private", 0o000)
        second = scan_unprivileged(db, root)
        assert second["errors"] == {str(root / "secret.jpg"): "permission_denied"}
        assert second["unlisted"] == [str(root / "private")]
        # what lies in the folder it could not list is not "gone": its rows stay
        with Index(db) as index:
            paths = {p for (p,) in index.db.execute("SELECT path FROM images")}
        assert str(root / "private" / "inner.jpg") in paths
        assert str(root / "private" / "deeper" / "deep.jpg") in paths
    finally:
        for dirpath, dirnames, filenames in os.walk(base):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o777)
        os.chmod(base / "photos" / "private", 0o777)
        shutil.rmtree(base)
