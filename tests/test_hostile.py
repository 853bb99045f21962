"""The hostile-input suite: a nasty tree through scan, search, watch, move-to, undo and delete.

Every step runs the real command line (in this process through click's CliRunner, or as a process
of its own where the step needs one), as a user would, and checks three things: a clear
message and never a traceback; the expected errors and matches; and the inventory of file
contents, so that no step loses a file. Permission cases run as an unprivileged user (root
ignores permission bits).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgindex import Index

from helpers import as_nobody, contents, invoke, inventory, photo_like, write_image
from test_hostile_scan import png_header_bomb
from test_watch import wait_for, watching

CLI = [sys.executable, "-m", "imgindex.cli"]
WEIRD_NAMES = ["with space.jpg", "ünïcødé 写真.jpg", "new\nline.jpg", "-leading-dash.jpg"]


def cli(*args, own_process: bool = False):
    """``imgindex ARGS`` with no terminal on stdin, in this process unless ``own_process``."""
    if own_process:
        out = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL)
    else:
        out = invoke(*args)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    return out


def odd_images(folder: Path) -> None:
    """Images that are valid but unusual: each decodes, and each gets a byte copy elsewhere."""
    folder.mkdir(parents=True)
    Image.new("RGB", (1, 1), (10, 20, 30)).save(folder / "one-pixel.png")
    photo_like(30, (20000, 20)).save(folder / "strip-20000x20.png")
    grey16 = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "sixteen-bit.png")
    photo_like(31).convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    palette.paste(1, (0, 0, 20, 40))
    palette.save(folder / "palette-transparent.gif", transparency=0)
    frames = [photo_like(32 + i, (64, 48)) for i in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=80, loop=0)
    frames[0].save(folder / "animated.webp", save_all=True, append_images=frames[1:], duration=80, lossless=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo_like(35, (64, 48)).transpose(Image.Transpose.ROTATE_90).save(folder / "exif-rotated.jpg", exif=exif)
    photo_like(36, (64, 48)).save(folder / "phone.heic", format="HEIF", quality=90)
    photo_like(37, (64, 48)).save(folder / "heic-named.jpg", format="HEIF", quality=90)  # decoded by content
    photo_like(38, (64, 48)).save(folder / "web.avif", quality=80)


def build_nasty(base: Path) -> Path:
    root = base / "nasty"
    odd_images(root / "odd")
    shutil.copytree(root / "odd", root / "backup" / "odd")  # byte copies: keepers in backup/ (shorter path)
    write_image(root / "good" / "a.jpg", seed=1)
    write_image(root / "good" / "b.jpg", seed=2)
    shutil.copy2(root / "good" / "a.jpg", root / "backup" / "a.jpg")
    shutil.copy2(root / "good" / "b.jpg", root / "backup" / "b.jpg")
    (root / "links").mkdir()
    os.link(root / "good" / "a.jpg", root / "links" / "a-hardlink.jpg")  # a second name of a duplicate
    os.link(root / "backup" / "b.jpg", root / "links" / "keeper-hardlink.jpg")  # a second name of a keeper
    for i, name in enumerate(WEIRD_NAMES):
        write_image(root / "names" / name, seed=10 + i)
        write_image(root / "backup" / "names" / name, seed=10 + i)
    deep = root
    for level in range(30):
        deep = deep / f"level{level:02d}"
    write_image(deep / "deep.jpg", seed=20)
    write_image(root / "backup" / "deep.jpg", seed=20)
    shutil.copy(root / "good" / "a.jpg", os.path.join(os.fsencode(root / "good"), b"caf\xe9.jpg"))  # not UTF-8
    bad = root / "bad"
    bad.mkdir()
    (bad / "zero.jpg").write_bytes(b"")
    full = (root / "good" / "a.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (bad / "corrupt.png").write_bytes(corrupt_png())
    (bad / "text.jpg").write_text("I am a text file with an image extension\n")
    (bad / "bomb.png").write_bytes(png_header_bomb(40000, 40000))
    heic, avif = (root / "odd" / "phone.heic").read_bytes(), (root / "odd" / "web.avif").read_bytes()
    (bad / "zero.heic").write_bytes(b"")
    (bad / "truncated.heic").write_bytes(heic[: len(heic) // 2])
    (bad / "corrupt.heic").write_bytes(heic[:40] + bytes(len(heic) - 40))
    (bad / "truncated.avif").write_bytes(avif[: len(avif) // 2])
    os.symlink(root / "missing-target.jpg", root / "broken-link.jpg")
    (root / "loop").mkdir()
    os.symlink(root, root / "loop" / "back-to-root")
    write_image(base / "outside" / "elsewhere.jpg", seed=3)
    os.symlink(base / "outside" / "elsewhere.jpg", root / "link-outside.jpg")
    os.symlink(root / "backup" / "a.jpg", root / "link-to-a-keeper.jpg")
    os.mkfifo(root / "fifo.jpg")
    return root


def corrupt_png() -> bytes:
    """A PNG whose header is right and whose pixel data is not zlib at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"this is not zlib data" * 20) + chunk(
        b"IEND", b"")


EXPECTED_ERRORS = {"zero.jpg": "empty_file", "truncated.jpg": "truncated", "corrupt.png": "corrupt",
                   "text.jpg": "not_an_image", "bomb.png": "decompression_bomb", "zero.heic": "empty_file",
                   "truncated.heic": "truncated", "corrupt.heic": "not_an_image", "truncated.avif": "not_an_image"}


@pytest.mark.slow
def test_nasty_tree_through_every_command_loses_nothing(tmp_path, monkeypatch):
    trash_home = tmp_path / "xdg"  # this test's own trash, so the inventory can count what is in it
    monkeypatch.setenv("XDG_DATA_HOME", str(trash_home))
    root = build_nasty(tmp_path)
    db, dest, outside = tmp_path / "index.db", tmp_path / "dest", tmp_path / "outside"
    original = inventory(root, outside)

    out = cli("scan", root, "--db", db, "--processes", "2")
    assert out.returncode == 0
    with Index(db) as index:
        errors = dict(index.db.execute("SELECT path, error_class FROM scan_errors"))
        assert {os.path.basename(p): c for p, c in errors.items()} == EXPECTED_ERRORS
        indexed = {p for (p,) in index.db.execute("SELECT path FROM images")}
        assert not any("link-" in p or "fifo" in p or "missing" in p for p in indexed)  # links, FIFO: never

    out = cli("search", "--db", db, "--format", "json", "-o", tmp_path / "matches.json")
    assert out.returncode == 0
    with Index(db) as index:
        lower = set(index.lower_quality())
        keepers = set(index.result())
    expected_lower = {str(root / "odd" / p.name) for p in (root / "odd").iterdir()}
    expected_lower |= {str(root / "names" / n) for n in WEIRD_NAMES}
    expected_lower |= {str(root / "good" / "a.jpg"), str(root / "good" / "b.jpg"), str(root / "links" / "a-hardlink.jpg"),
                       str(root / "links" / "keeper-hardlink.jpg"), str(next(root.glob("level00/**/deep.jpg")))}
    assert lower == expected_lower
    assert all(k.startswith(str(root / "backup")) for k in keepers)

    # the watcher catches up over the same tree, then stops cleanly on SIGTERM
    with watching(root, db) as proc:
        pass
    assert proc.returncode == 0 and "Traceback" not in proc.stderr.read()

    out = cli("move-to", dest, "--db", db, "--yes")
    assert out.returncode == 0, out.stderr
    assert "same file as its keeper" in out.stderr  # the keeper's hard link stays where it is
    after = inventory(root, dest, outside)
    assert Counter(after.values()) == Counter(original.values())  # every file somewhere, once
    assert {p: h for p, h in after.items() if p in original} == {
        p: h for p, h in original.items() if p not in lower or p.endswith("keeper-hardlink.jpg")}
    assert (dest / "names" / "new\nline.jpg").exists() and (dest / "names" / "-leading-dash.jpg").exists()
    assert next(dest.glob("level00/**/deep.jpg")).is_file()

    out = cli("undo", "--db", db, "--yes")
    assert out.returncode == 0, out.stderr
    assert inventory(root, outside) == original
    assert not [p for p in inventory(dest) if not os.path.isdir(p)]

    assert cli("search", "--db", db).returncode == 0
    # a process of its own: send2trash reads XDG_DATA_HOME once, when first imported, so only a fresh
    # interpreter trashes into this test's own trash_home
    out = cli("delete", "--db", db, "--yes", own_process=True)
    assert out.returncode == 0, out.stderr
    assert contents(root, outside, trash_home) == Counter(original.values())
    out = cli("undo", "--db", db, "--yes")
    assert out.returncode == 0, out.stderr
    assert inventory(root, outside) == original

    assert cli("search", "--db", db).returncode == 0
    out = cli("delete", "--db", db, "--permanent", "--yes")
    assert out.returncode == 0, out.stderr
    left = inventory(root, outside)
    assert set(left.values()) == set(original.values())  # every picture keeps at least one copy
    assert set(original) - set(left) == lower - {str(root / "links" / "keeper-hardlink.jpg")}
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM actions WHERE outcome = 'planned'").fetchone()[0] == 0


def _scan_and_search(db: str, root: str) -> int:
    with Index(db) as index:
        index.scan([root], processes=1)
        index.search(processes=1)
        return len(index.lower_quality())


def _move(db: str, dest: str) -> dict:
    with Index(db) as index:
        report = index.move_to(dest)
        return {os.path.basename(o.source): [o.outcome, o.message or ""] for o in report.outcomes}


def _delete(db: str) -> dict:
    with Index(db) as index:
        report = index.delete(permanent=True)
        return {os.path.basename(o.source): [o.outcome, o.message or ""] for o in report.outcomes}


@pytest.fixture
def shared_place():
    """A folder an unprivileged user can reach (tmp_path is root's own)."""
    base = Path(tempfile.mkdtemp(prefix="imgindex-hostile-"))
    os.chmod(base, 0o777)
    yield base
    for dirpath, dirnames, _ in os.walk(base):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o777)
    shutil.rmtree(base)


def test_permissions_unreadable_file_unlistable_folder_locked_folder_read_only_dest(shared_place):
    root = shared_place / "photos"
    write_image(root / "a-keeper" / "a.jpg", seed=1)  # the shortest path: the keeper
    for folder in ("plain", "unreadable", "hidden", "locked"):
        (root / folder).mkdir()
        shutil.copy2(root / "a-keeper" / "a.jpg", root / folder / f"{folder}.jpg")
    for dirpath, _, names in os.walk(shared_place):
        os.chmod(dirpath, 0o777)
        for name in names:
            os.chmod(os.path.join(dirpath, name), 0o666)
    db = str(shared_place / "index.db")
    assert as_nobody(_scan_and_search, db, str(root)) == 4
    original = inventory(root)

    os.chmod(root / "unreadable" / "unreadable.jpg", 0o000)
    os.chmod(root / "hidden", 0o000)  # a folder that cannot be listed or entered
    os.chmod(root / "locked", 0o555)  # a folder whose files cannot be removed
    read_only = shared_place / "read-only-dest"
    read_only.mkdir(mode=0o555)
    os.chmod(read_only, 0o555)

    outcomes = as_nobody(_move, db, str(read_only))
    assert outcomes["unreadable.jpg"][0] == "skipped" and "cannot be checked" in outcomes["unreadable.jpg"][1]
    assert outcomes["hidden.jpg"][0] == "skipped" and "Permission denied" in outcomes["hidden.jpg"][1]
    assert outcomes["plain.jpg"] == ["failed", outcomes["plain.jpg"][1]] and "Permission denied" in outcomes[
        "plain.jpg"][1]
    assert outcomes["locked.jpg"][0] == "failed"

    writable = shared_place / "dest"
    writable.mkdir(mode=0o777)
    os.chmod(writable, 0o777)
    outcomes = as_nobody(_move, db, str(writable))
    assert outcomes["plain.jpg"][0] == "done"
    assert outcomes["locked.jpg"][0] == "failed"  # linked, could not unlink: the link was taken back
    assert {os.path.relpath(p, writable) for p in inventory(writable)} == {os.path.join("plain", "plain.jpg")}

    outcomes = as_nobody(_delete, db)
    assert outcomes["locked.jpg"][0] == "failed" and outcomes["unreadable.jpg"][0] == "skipped"
    for folder in ("hidden", "locked"):
        os.chmod(root / folder, 0o777)
    os.chmod(root / "unreadable" / "unreadable.jpg", 0o666)
    now = inventory(root, writable)
    assert Counter(now.values()) == Counter(original.values())  # every file still somewhere
    assert (root / "a-keeper" / "a.jpg").exists()


def test_the_watcher_over_a_nasty_tree_reports_and_keeps_going(tmp_path):
    root = build_nasty(tmp_path)
    db = tmp_path / "index.db"
    original = inventory(root)
    with watching(root, db) as proc:
        write_image(root / "arrived" / "new.jpg", seed=1)  # a duplicate of good/a.jpg lands while watching
        (root / "arrived" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
        wait_for(db, "SELECT count(*) FROM images WHERE path = ?", lambda r: r[0][0] == 1,
                 args=(str(root / "arrived" / "new.jpg"),), proc=proc)
        wait_for(db, "SELECT count(*) FROM scan_errors WHERE path = ?", lambda r: r[0][0] == 1,
                 args=(str(root / "arrived" / "broken.jpg"),), proc=proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr.read()
    after = inventory(root)
    assert {p: h for p, h in after.items() if p in original} == original


COMMANDS = {
    "scan": ["scan", "{root}"],
    "search": ["search"],
    "find": ["find", "{root}"],
    "status": ["status"],
    "watch": ["watch", "{root}"],
    "move-to": ["move-to", "{dest}", "--yes"],
    "delete": ["delete", "--yes"],
    "undo": ["undo", "--yes"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_a_corrupt_or_future_database_and_leaves_it_as_it_was(tmp_path, command):
    root = tmp_path / "photos"
    write_image(root / "a.jpg", seed=1)
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    future = tmp_path / "future.db"
    Index(future).close()
    conn = sqlite3.connect(future)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
                 " VALUES ('imgindex', '9999_from_the_future', 'x')")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the main file, so its bytes say it all
    conn.close()
    future_bytes = future.read_bytes()
    args = [a.format(root=root, dest=tmp_path / "dest") for a in COMMANDS[command]]
    for db, expected, before in ((corrupt, "not a usable imgindex database", corrupt.read_bytes()),
                                 (future, "newer imgindex", future_bytes)):
        out = cli(*args, "--db", db)
        assert out.returncode == 1, (command, db.name, out.stdout, out.stderr)
        assert expected in out.stderr
        assert db.read_bytes() == before  # never "repaired" over, never replaced
    assert inventory(root)[str(root / "a.jpg")] and not (tmp_path / "dest").exists()
