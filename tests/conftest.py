"""Fixtures: real image files made with Pillow in tmp_path, and a fresh index per test."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgindex import Index


def sha(path) -> str:
    with open(path, "rb") as fp:
        return hashlib.sha256(fp.read()).hexdigest()


def inventory(*folders) -> dict[str, str]:
    """path -> content hash of every file under ``folders`` (symlinks by their target, FIFOs and other
    specials by their kind): equal before and after means nothing was lost, changed or added."""
    found = {}
    for folder in folders:
        for dirpath, dirnames, names in os.walk(folder):
            for name in names + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    found[path] = "link:" + os.readlink(path)
                elif os.path.isfile(path):
                    found[path] = sha(path)
                else:
                    found[path] = "special"
    return found


def contents(*folders) -> Counter:
    """How many files hold each content, wherever they are (the trash's .trashinfo records aside)."""
    return Counter(h for p, h in inventory(*folders).items() if not p.endswith(".trashinfo"))


def photo_like(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A smooth, photo-like RGB picture (gradients + blobs), distinct for each seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 6.28)
        wave = np.sin(2 * np.pi * fx * x / w + phase) * np.cos(2 * np.pi * fy * y / h)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(w / 8, w / 3)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        channels.append(127 + 80 * wave + 60 * blob * rng.choice([-1, 1]))
    arr = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def write_image(path: Path, seed: int = 0, size=(96, 72), fmt: str | None = None, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    photo_like(seed, size).save(path, format=fmt, **save)
    return path


def tensor_of(index: Index, path: Path | str) -> np.ndarray:
    row = index.db.execute(
        "SELECT v.tensor, v.px_size FROM vectors v JOIN images i ON i.id = v.image_id WHERE i.path = ?",
        [os.path.abspath(path)],
    ).fetchone()
    assert row is not None, f"{path} is not indexed"
    px = row[1]
    return np.frombuffer(row[0], dtype=np.uint8).reshape(px, px, 3)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())


@pytest.fixture(autouse=True, scope="session")
def private_trash(tmp_path_factory):
    """Trashed test files go to a trash of our own (XDG_DATA_HOME/Trash), never the user's."""
    home = tmp_path_factory.mktemp("xdg-data-home")
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = previous


@pytest.fixture
def index(tmp_path):
    with Index(tmp_path / "index.db") as ix:
        yield ix


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder of 6 distinct photo-like JPEGs and PNGs, one in a subfolder."""
    root = tmp_path / "photos"
    for i in range(4):
        write_image(root / f"img{i}.jpg", seed=i, quality=92)
    write_image(root / "img4.png", seed=4)
    write_image(root / "sub" / "img5.jpg", seed=5, quality=92)
    return root


def best_match(a: np.ndarray, b: np.ndarray, rotate: bool, mirror: bool) -> tuple[float, int, bool]:
    """The definition, written independently of imgindex: the smallest float64 MSE between b and
    a flipped (with mirror) then turned clockwise, over every orientation; ties to the first."""
    best = None
    for m in (False, True) if mirror else (False,):
        for r in (0, 90, 180, 270) if rotate else (0,):
            turned = np.rot90(np.fliplr(a) if m else a, k=-(r // 90))
            value = float(np.mean((turned.astype(np.float64) - b.astype(np.float64)) ** 2))
            if best is None or value < best[0]:
                best = (value, r, m)
    return best


def as_nobody(func, *args):
    """``func(*args)`` in a forked child that dropped root (permission bits do not stop root); its
    JSON-able result comes back through a pipe. Without root, it simply runs here.

    Everything the child needs is imported before the fork, as an unprivileged user may not read
    this interpreter's files; the child never execs.
    """
    if os.geteuid() != 0:
        return func(*args)
    import numpy.ma  # noqa: F401  (numpy imports it lazily, from files the child may not read)

    import imgindex.api  # noqa: F401  (and with it every stage the child runs)

    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, run, send the result, leave without cleanup
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            with os.fdopen(write_end, "w") as out:
                json.dump(func(*args), out)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as inp:
        text = inp.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, f"{func.__name__} failed as an unprivileged user"
    return json.loads(text)
