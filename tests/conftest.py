"""Fixtures: real image files made with Pillow in tmp_path, and a fresh index per test.

Plain helper functions live in helpers.py (``from helpers import ...``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgindex import Index

from helpers import write_image


def pytest_addoption(parser):
    parser.addoption("--torture-trials", type=int, default=1,
                     help="kill-anywhere trials per command in tests/torture (the long run: 200)")
    parser.addoption("--torture-seed", type=int, default=None,
                     help="the first trial's seed (default: 1; a failure prints the seed that replays it)")


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
