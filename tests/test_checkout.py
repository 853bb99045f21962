"""Running from a checkout works however the package was installed: the source folder imgindex/,
first on sys.path, shadows the installed package and lacks imgindex.migrations (the schema lives
in the top-level migrations/ folder), so the package must find its schema there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import write_image

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys
# what a plain `pip install .` leaves: no editable finder mapping imgindex.migrations to migrations/
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
from imgindex import Index
with Index(sys.argv[1]) as index:
    report = index.scan([sys.argv[2]], processes=1)
    found = index.search(processes=1)
import imgindex, imgindex.migrations
print(imgindex.__file__)
print(imgindex.migrations.__file__)
print(report.added, found.groups)
"""


def test_a_checkout_finds_its_schema_in_the_top_level_migrations_folder(tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "imgindex", checkout / "imgindex", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "migrations", checkout / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    photos = tmp_path / "photos"
    write_image(photos / "a.jpg", seed=1)
    (photos / "b.jpg").write_bytes((photos / "a.jpg").read_bytes())
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "i.db"), str(photos)], cwd=checkout,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    package, schema, counts = run.stdout.splitlines()
    assert Path(package).parent == checkout / "imgindex"  # the checkout's copy ran, not the installed one
    assert Path(schema) == checkout / "migrations" / "__init__.py"
    assert counts == "2 1"
