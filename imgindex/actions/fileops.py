"""Moving, copying and trashing single files so that nothing is ever overwritten or half-copied.

No database here: ``actions`` journals around these calls. Every function either does the whole
thing or leaves the source as it was (and removes only the partial copy it created itself).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import sys
from urllib.parse import unquote_to_bytes

PARTIAL_PREFIX = ".imgindex-partial-"
_COPY_INSTEAD_OF_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


class ContentChanged(Exception):
    """The file's bytes are no longer those the index (or the journal) knows."""


def file_hash(path: str) -> str:
    """SHA-256 of the file's bytes, as the indexer stores it."""
    with open(path, "rb") as fp:
        return hashlib.file_digest(fp, "sha256").hexdigest()


def is_regular(path: str) -> bool:
    """A regular file, not reached through a symlink (we never act on links)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def free_name(path: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``path``, or ``name (1).ext``, ``name (2).ext``...: the first that is neither on disk nor in ``taken``."""
    candidate = path
    stem, ext = os.path.splitext(path)
    n = 0
    while os.path.lexists(candidate) or candidate in taken:
        n += 1
        candidate = f"{stem} ({n}){ext}"
    return candidate


def move_file(src: str, dst: str, expected_hash: str, tag: str) -> str:
    """Move ``src`` to ``dst`` without ever replacing ``dst`` (FileExistsError if it is there).

    On one filesystem: hard link, then unlink the source (both names exist in between, never
    neither). Otherwise (another device, or no hard links): copy to a partial file in DEST's
    folder, fsync, re-read and check the hash, link it into place, then remove the source.
    Returns 'link' or 'copy'. ``tag`` names the partial file so recovery can find it.
    """
    folder = os.path.dirname(dst)
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:  # a file stands where the folder must be: no other name for dst helps
        raise NotADirectoryError(errno.ENOTDIR, "a file is where this folder must be", folder) from None
    try:
        os.link(src, dst, follow_symlinks=False)
        method = "link"
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _COPY_INSTEAD_OF_LINK:
            raise
        copy_verified(src, dst, expected_hash, tag)
        method = "copy"
    try:
        os.unlink(src)
    except OSError:
        os.unlink(dst)  # the source cannot go (a read-only folder): take back the name or copy we just made
        raise
    _fsync_dir(os.path.dirname(src))
    return method


def copy_verified(src: str, dst: str, expected_hash: str, tag: str) -> None:
    """Copy ``src`` to a new file ``dst`` whose re-read bytes hash to ``expected_hash``; never replaces ``dst``."""
    partial = partial_path(dst, tag)
    try:
        digest = hashlib.sha256()
        with open(src, "rb") as fin, open(partial, "xb") as fout:
            while chunk := fin.read(1 << 20):
                digest.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        if digest.hexdigest() != expected_hash:
            raise ContentChanged(f"{src} changed since it was indexed")
        try:
            shutil.copystat(src, partial)
        except OSError:  # some filesystems refuse modes or xattrs: the times are what matter
            st = os.stat(src)
            os.utime(partial, ns=(st.st_atime_ns, st.st_mtime_ns))
        if file_hash(partial) != expected_hash:
            raise OSError(errno.EIO, f"the copy at {partial} does not read back as written")
        _place(partial, dst)
    finally:
        if os.path.lexists(partial):
            os.unlink(partial)  # our own partial copy, never the user's file
    _fsync_dir(os.path.dirname(dst))


def partial_path(dst: str, tag: str) -> str:
    return os.path.join(os.path.dirname(dst), f"{PARTIAL_PREFIX}{tag}")


def _place(partial: str, dst: str) -> None:
    """Give the finished copy its name; link() refuses to replace, rename() only after a check."""
    try:
        os.link(partial, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _COPY_INSTEAD_OF_LINK:
            raise
        if os.path.lexists(dst):  # a filesystem without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, "File exists", dst) from exc
        os.rename(partial, dst)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def trash(path: str, expected_hash: str) -> str | None:
    """Send ``path`` to the system trash; return where it landed when that can be known (Linux)."""
    from send2trash import send2trash
    from send2trash.exceptions import TrashPermissionError

    try:
        send2trash(path)
    except TrashPermissionError as exc:
        raise OSError(errno.EACCES, f"no trash folder can be used for {path}: {exc}") from exc
    return find_trashed(path, expected_hash)


def find_trashed(original: str, expected_hash: str) -> str | None:
    """The freedesktop trash entry for ``original`` with these bytes, newest first; None elsewhere."""
    if sys.platform in ("darwin", "win32"):
        return None
    stem, ext = os.path.splitext(os.path.basename(original))
    for trash_dir, topdir in _trash_dirs(original):
        info_dir = os.path.join(trash_dir, "info")
        # send2trash names entries "name.ext", "name 1.ext", "name 2.ext"...: probe those first
        probed = []
        for n in range(10_000):
            name = f"{stem}{ext}" if n == 0 else f"{stem} {n}{ext}"
            if not os.path.lexists(os.path.join(info_dir, name + ".trashinfo")):
                break
            probed.append(name + ".trashinfo")
        found = _newest_entry(trash_dir, topdir, probed, original, expected_hash)
        if found is None:  # gaps left by an emptied trash: look at every entry of that name
            try:
                names = [e.name for e in os.scandir(info_dir)
                         if e.name.startswith(stem) and e.name.endswith(ext + ".trashinfo")]
            except OSError:
                continue
            found = _newest_entry(trash_dir, topdir, names, original, expected_hash)
        if found is not None:
            return found
    return None


def _newest_entry(trash_dir: str, topdir: str, info_names: list[str], original: str, expected_hash: str):
    best: tuple[float, str] | None = None
    for info_name in info_names:
        info = os.path.join(trash_dir, "info", info_name)
        if _trashinfo_path(info, topdir) != original:
            continue
        item = os.path.join(trash_dir, "files", info_name[: -len(".trashinfo")])
        if is_regular(item) and file_hash(item) == expected_hash:
            mtime = os.stat(info).st_mtime
            if best is None or mtime > best[0]:
                best = (mtime, item)
    return None if best is None else best[1]


def restore_trashed(item: str, original: str, expected_hash: str, tag: str) -> str:
    """Move a trash entry back to ``original`` (never over anything) and drop its .trashinfo."""
    method = move_file(item, original, expected_hash, tag)
    trash_dir = os.path.dirname(os.path.dirname(item))
    info = os.path.join(trash_dir, "info", os.path.basename(item) + ".trashinfo")
    if os.path.lexists(info):
        os.unlink(info)  # the trash's own record of an entry that is no longer in it
    return method


def _trash_dirs(original: str) -> list[tuple[str, str]]:
    """(trash folder, folder its relative Path= entries start from), as the freedesktop spec lists them."""
    data_home = os.path.expanduser(os.environ.get("XDG_DATA_HOME") or "~/.local/share")
    dirs = [(os.path.join(data_home, "Trash"), data_home)]
    mount = os.path.dirname(os.path.abspath(original))
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    uid = str(os.getuid())
    dirs += [(os.path.join(mount, ".Trash", uid), mount), (os.path.join(mount, f".Trash-{uid}"), mount)]
    return dirs


def _trashinfo_path(info_file: str, topdir: str) -> str | None:
    try:
        with open(info_file, "rb") as fp:
            for line in fp:
                if line.startswith(b"Path="):
                    path = os.fsdecode(unquote_to_bytes(line[5:].strip()))
                    return os.path.normpath(os.path.join(topdir, path))
    except OSError:
        return None
    return None
