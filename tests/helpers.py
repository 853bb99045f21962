"""Plain helpers the tests import (``from helpers import ...``); the fixtures stay in conftest.py.

Files and their contents (``sha``, ``inventory``, ``contents``), pictures (``photo_like``,
``write_image``, the camera's orientations ``STORED``), what the index stored (``tensor_of``,
``mse``), the reference orientation search (``best_match``), running as an unprivileged user
(``as_nobody``) and the command line run in this process (``invoke``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pwd
import shutil
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from imgindex import Index

# EXIF orientation -> what to do to the upright picture to get the pixels a camera would store
STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
          7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


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


# -- the command line, in this process ------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """What a finished ``imgindex`` command left: the fields of ``subprocess.CompletedProcess``
    that the tests read."""

    returncode: int
    stdout: str
    stderr: str


def invoke(*args, input: str | None = None, env: dict[str, str | None] | None = None, cwd=None) -> Ran:
    """``imgindex ARGS`` run in this process by click's ``CliRunner``, as a fresh interpreter would
    run it: the same exit status (1 for a ClickException, 2 for a usage error, ``sys.exit``'s code),
    a traceback on stderr and status 1 for an uncaught exception, library warnings reaching stderr
    through ``logging.lastResort`` (no handler configured), Python's default warning filters, stdin
    and stderr that are not terminals, and fds 1 and 2 captured too, so what worker processes write
    to stderr is in ``stderr`` as it is for a real command. ~0.4 s cheaper than a subprocess.

    Not for what needs a process of its own: a signal, a real terminal, a watcher to stop.
    """
    from imgindex.cli import cli

    runner = CliRunner(capture="fd")
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext(), _as_in_a_fresh_interpreter() as shown:
        result = runner.invoke(cli, [str(a) for a in args], input=input, env=env, prog_name="imgindex")
    stderr = result.stderr + "".join(shown)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return Ran(result.exit_code, result.stdout, stderr)


@contextlib.contextmanager
def _as_in_a_fresh_interpreter():
    """No logging handlers (pytest's capture aside) and the default warning filters for the length of
    one command; yields the warnings it showed, formatted as Python prints them. The imgindex logger's
    level is put back afterwards (``watch`` raises it to INFO and a process would simply end)."""
    root, ours = logging.getLogger(), logging.getLogger("imgindex")
    saved = (root.handlers[:], root.level, ours.handlers[:], ours.level)
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    shown: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category, append=True)
            yield shown
        shown += [warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught]
    finally:
        root.handlers[:], ours.handlers[:] = saved[0], saved[2]
        root.setLevel(saved[1])
        ours.setLevel(saved[3])


# -- a real browser -------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def headless_chromium(profile: Path, *, checks: str, height: int):
    """Debian's Chromium, headless, driven by Selenium, its console log kept; skips loudly (naming what
    goes unchecked) when Chromium or ChromeDriver is missing."""
    import pytest

    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("LOUD: Chromium and ChromeDriver are not installed (Debian: apt-get install chromium "
                    f"chromium-driver; .ci/run does it), so {checks} is not checked in a browser")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size=1280,{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
