"""The same difPy script against difPy 4.2.1 itself and against imgindex, on one fixture tree.

Where the two agree by promise (the keys and types of ``stats``, the file counts, the duplicate
groups, the MSE of the same pair), the test asserts equality. Where imgindex differs on purpose
(README, "Coming from difPy"), it asserts the documented difference, not equality.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import difPy
import numpy as np
import pytest
from PIL import Image

import imgindex

from helpers import contents, write_image

PROCESSES = min(2, os.cpu_count() or 1)  # difPy refuses more processes than CPUs


def make_tree(root: Path) -> Path:
    """Two folders with subfolders: byte copies (also under one name in two folders), a re-encode,
    a copy whose pixels were turned, invalid files (text, PDF, SVG, truncated, empty)."""
    f1, f2 = root / "folder1", root / "folder2"
    write_image(f1 / "a.jpg", seed=1, size=(120, 90), quality=92)
    shutil.copy2(f1 / "a.jpg", f1 / "a_copy.jpg")
    (f1 / "subfolder").mkdir(parents=True)
    shutil.copy2(f1 / "a.jpg", f1 / "subfolder" / "a.jpg")
    write_image(f1 / "b.png", seed=2, size=(120, 90))
    Image.open(f1 / "b.png").save(f1 / "b_q80.jpg", quality=80)
    write_image(f1 / "c.png", seed=3, size=(90, 120))
    Image.open(f1 / "c.png").rotate(90, expand=True).save(f1 / "c_turned.png")
    write_image(f1 / "subfolder" / "d.png", seed=4, size=(100, 100))
    (f1 / "notes.txt").write_text("not a picture")
    data = (f1 / "a.jpg").read_bytes()
    (f1 / "subfolder" / "broken.jpg").write_bytes(data[: len(data) // 3])
    (f1 / "subfolder" / "empty.jpg").write_bytes(b"")
    (f2 / "subfolder").mkdir(parents=True)
    shutil.copy2(f1 / "a.jpg", f2 / "a.jpg")
    shutil.copy2(f1 / "subfolder" / "d.png", f2 / "d_copy.png")
    shutil.copy2(f1 / "subfolder" / "d.png", f2 / "d_copy2.png")
    write_image(f2 / "e.jpg", seed=5, size=(120, 90))
    shutil.copy2(f1 / "b.png", f2 / "subfolder" / "b.png")
    (f2 / "doc.pdf").write_bytes(b"%PDF-1.4 not really")
    (f2 / "subfolder" / "vector.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return root


def script(mod, root: Path, **build):
    """A difPy user's script, unchanged but for the module: build, then two searches."""
    dif = mod.build(str(root / "folder1"), str(root / "folder2"), show_progress=False, processes=PROCESSES, **build)
    built = copy.deepcopy(dif.stats)
    dup = mod.search(dif, similarity="duplicates", show_progress=False, processes=PROCESSES)
    dup_stats = copy.deepcopy(dup.stats)  # difPy's search stats are one dict, updated by the next search
    sim = mod.search(dif, similarity="similar", show_progress=False, processes=PROCESSES)
    return dict(build=built, dup=dup, dup_stats=dup_stats, sim=sim, sim_stats=copy.deepcopy(sim.stats))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("side-by-side") / "lib")
    cwd = os.getcwd()
    os.chdir(root.parent)  # difPy's paths are as given (relative); imgindex's absolute
    try:
        yield root, script(difPy, root), script(imgindex, root)
    finally:
        os.chdir(cwd)


def shape(value, path=()):
    """{key path: type} of a stats dict; numpy scalars as the Python types they subclass; logs by count only."""
    if isinstance(value, dict):
        if path and path[-1] == "logs":
            return {path: dict}
        out = {}
        for key, item in value.items():
            out.update(shape(item, (*path, key)))
        return out
    for plain in (bool, int, float, str):
        if isinstance(value, plain) and not (plain is int and isinstance(value, bool)):
            return {path: float if isinstance(value, np.floating) else plain}
    return {path: type(value)}


def groups(result: dict) -> set[frozenset[str]]:
    return {frozenset([os.path.abspath(k), *(os.path.abspath(p) for p, _ in v)]) for k, v in result.items()}


@pytest.mark.slow
def test_every_stats_key_of_difpy_is_there_with_its_type(runs):
    _, theirs, ours = runs
    for stats in ("build", "dup_stats", "sim_stats"):
        expected, got = shape(theirs[stats]), shape(ours[stats])
        missing = {k: v for k, v in expected.items() if k not in got}
        retyped = {k: (v, got[k]) for k, v in expected.items() if k in got and got[k] is not v
                   and not (v is int and got[k] is float)}  # difPy's int 0 MSE vs a float: JSON's number
        assert missing == {} and retyped == {}, stats
    for stamp in ("start", "end"):  # ISO strings, as difPy writes them
        assert ours["build"]["process"]["build"]["duration"][stamp][:4].isdigit()


@pytest.mark.slow
def test_file_counts_invalid_files_and_duplicate_groups_are_difpys(runs):
    _, theirs, ours = runs
    assert ours["build"]["total_files"] == theirs["build"]["total_files"] == 18
    assert ours["build"]["invalid_files"]["count"] == theirs["build"]["invalid_files"]["count"] == 5
    assert ({os.path.abspath(p) for p in ours["build"]["invalid_files"]["logs"]}
            == {os.path.abspath(p) for p in theirs["build"]["invalid_files"]["logs"]})
    assert {v for v in ours["build"]["invalid_files"]["logs"].values() if "Unsupported" in v} == {
        "Unsupported file type"}
    for stats in ("dup_stats", "sim_stats"):
        assert ours[stats]["process"]["search"]["files_searched"] == theirs[stats]["process"]["search"]["files_searched"]
    assert groups(ours["dup"].result) == groups(theirs["dup"].result)
    assert (ours["dup_stats"]["process"]["search"]["matches_found"]["duplicates"]
            == theirs["dup_stats"]["process"]["search"]["matches_found"]["duplicates"] == 6)
    assert len(ours["dup"].lower_quality) == len(theirs["dup"].lower_quality) == 6


@pytest.mark.slow
def test_similar_differs_as_documented(runs):
    """'similar' is MSE 6 (difPy: 5); a result's key is its group's keeper (difPy: whichever image
    came first, here the re-encode), and matches_found counts MSE to that keeper; the same pair
    has the same MSE in both."""
    _, theirs, ours = runs
    assert theirs["sim_stats"]["process"]["search"]["parameters"]["similarity_mse"] == 5
    assert ours["sim_stats"]["process"]["search"]["parameters"]["similarity_mse"] == 6
    ours_groups, their_groups = groups(ours["sim"].result), groups(theirs["sim"].result)
    assert their_groups <= ours_groups  # every group difPy finds, imgindex finds whole
    b_group = {k: v for k, v in theirs["sim"].result.items() if "/b" in k}
    assert [os.path.basename(k) for k in b_group] == ["b_q80.jpg"]  # difPy keys the group by the re-encode
    (key, matches), = ((k, v) for k, v in ours["sim"].result.items() if "/b" in k)
    assert os.path.basename(key) == "b.png" and sorted(m for _, m in matches)[0] == 0.0  # the original keeps
    found = {k: ours["sim_stats"]["process"]["search"]["matches_found"][k] for k in ("duplicates", "similar")}
    assert found == {"duplicates": 6, "similar": 2}  # the b copy is a duplicate of its keeper
    assert theirs["sim_stats"]["process"]["search"]["matches_found"] == {"duplicates": 5, "similar": 3}

    def mses(result):
        return {frozenset((os.path.abspath(k), os.path.abspath(p))): float(m) for k, v in result.items() for p, m in v}

    theirs_mse, ours_mse = mses(theirs["sim"].result), mses(ours["sim"].result)
    same_pairs = theirs_mse.keys() & ours_mse.keys()
    assert len(same_pairs) >= 5  # the turned copy and the byte copies are reported by both
    assert all(ours_mse[p] == pytest.approx(theirs_mse[p], abs=1e-9) for p in same_pairs)


@pytest.mark.slow
def test_in_folder_nests_by_folder_like_difpy(runs, tmp_path):
    root, _, _ = runs
    theirs = difPy.search(difPy.build(str(root / "folder1"), str(root / "folder2"), in_folder=True,
                                      show_progress=False, processes=PROCESSES), show_progress=False,
                          processes=PROCESSES)
    ours = imgindex.search(imgindex.build(str(root / "folder1"), str(root / "folder2"), in_folder=True,
                                          show_progress=False, processes=PROCESSES), show_progress=False,
                           processes=PROCESSES)
    assert {os.path.abspath(k) for k in ours.result} == {os.path.abspath(k) for k in theirs.result}
    for folder in theirs.result:
        assert groups(ours.result[os.path.abspath(folder)]) == groups(theirs.result[folder])
    assert (ours.stats["process"]["search"]["matches_found"]["duplicates"]
            == theirs.stats["process"]["search"]["matches_found"]["duplicates"] == 3)
    assert len(ours.lower_quality) == len(theirs.lower_quality) == 3  # one keeper per group, in both


@pytest.mark.slow
def test_move_to_never_replaces_where_difpy_loses_files(tmp_path):
    """difPy moves every file to DEST/<its name>: of two lower-quality copies named a.jpg, one is lost."""
    files = {}
    for mod in (difPy, imgindex):
        root = make_tree(tmp_path / mod.__name__ / "lib")
        dest = tmp_path / mod.__name__ / "moved"
        before = sum(contents(root).values())
        se = mod.search(mod.build(str(root / "folder1"), str(root / "folder2"), show_progress=False,
                                  processes=PROCESSES), show_progress=False, processes=PROCESSES)
        assert len(se.lower_quality) == 6
        se.move_to(str(dest))
        files[mod.__name__] = (before, sum(contents(root, dest).values()))
        moved = sorted(str(p) for p in dest.rglob("*") if p.is_file())
        if mod is imgindex:  # lower_quality now lists where the files are, as difPy's does
            assert sorted(se.lower_quality) == moved and len(moved) == 6
    assert files["difPy"][1] < files["difPy"][0]  # a file is gone
    assert files["imgindex"][1] == files["imgindex"][0]  # nothing is


@pytest.mark.slow
def test_delete_removes_the_same_files_but_into_the_trash(tmp_path):
    for mod in (difPy, imgindex):
        root = make_tree(tmp_path / mod.__name__ / "lib")
        before = contents(root)
        dif = mod.build(str(root / "folder1"), str(root / "folder2"), show_progress=False, processes=PROCESSES)
        se = mod.search(dif, show_progress=False, processes=PROCESSES)
        gone = len(se.lower_quality)
        se.delete(silent_del=True)
        assert sum(contents(root).values()) == sum(before.values()) - gone
    trash = Path(os.environ["XDG_DATA_HOME"]) / "Trash" / "files"
    assert len([p for p in trash.iterdir() if p.suffix in (".jpg", ".png")]) >= 6  # imgindex's went to the trash


@pytest.mark.slow
def test_the_command_line_writes_difpys_three_files_with_difpys_keys(tmp_path):
    """`python dif.py FLAGS` and `imgindex difpy FLAGS`: the same three files, the same stats keys."""
    import json
    import subprocess
    import sys

    root = make_tree(tmp_path / "lib")
    flags = ["-D", str(root / "folder1"), str(root / "folder2"), "-s", "duplicates", "-p", "False", "-proc", "2"]
    commands = {"difPy": [sys.executable, str(Path(difPy.__file__).parent / "dif.py")],
                "imgindex": [sys.executable, "-m", "imgindex.cli", "difpy"]}
    out = {}
    for name, command in commands.items():
        folder = tmp_path / f"out-{name}"
        run = subprocess.run([*command, *flags, "-Z", str(folder)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        files = sorted(p.name.split("_", 2)[2] for p in folder.iterdir())
        assert files == ["lower_quality.txt", "results.json", "stats.json"]
        out[name] = {kind: json.loads(next(folder.glob(f"difPy_*_{kind}.json")).read_text())
                     for kind in ("results", "stats")}
    assert set(shape(out["difPy"]["stats"])) <= set(shape(out["imgindex"]["stats"]))
    assert groups(out["imgindex"]["results"]) == groups(out["difPy"]["results"])
    bad = subprocess.run([*commands["imgindex"], "-D", str(root), "-mv", str(tmp_path / "m"), "-d", "True"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "mutually exclusive" in bad.stderr


def readme_blocks(language: str) -> list[str]:
    """The code blocks of difPy's own README, as its 4.2.1 wheel ships it."""
    import importlib.metadata
    import re

    text = importlib.metadata.distribution("difPy").read_text("METADATA")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_the_scripts_and_command_lines_of_difpys_readme_run_unchanged(tmp_path):
    """Every Python block of difPy's README that is code (not printed output), one after the other with
    only the import changed and its example paths pointed at a fixture tree; then its CLI lines."""
    import ast
    import shlex
    import subprocess
    import sys

    root = make_tree(tmp_path / "lib")
    paths = {"C:/Path/to/Folder/": root / "folder1", "C:/Path/to/FolderA/": root / "folder1",
             "C:/Path/to/FolderB/": root / "folder2", "C:/Path/to/FolderC/": root / "folder1" / "subfolder",
             "C:/Path/to/Folder_A/": root / "folder1", "C:/Path/to/Folder_B/": root / "folder2",
             "C:/Path/to/Folder_C/": root / "folder1" / "subfolder", "C:/Path/to/Destination/": tmp_path / "moved"}
    code, cli_lines = [], []
    for block in readme_blocks("python"):
        cli_lines += [line for line in block.splitlines() if line.startswith("python dif.py")]
        try:
            ast.parse(block)
        except SyntaxError:
            continue  # a block that shows output ("> Output: ...")
        if "(" in block and "*directory" not in block and "difpy_obj" not in block:  # not a signature
            code.append(block.replace(",...]", "]"))  # the README's "and so on"
    script = "\n".join(code).replace("import difPy", "import imgindex as difPy")
    for placeholder, path in paths.items():
        script = script.replace(placeholder, str(path))
    assert "difPy.build(" in script and "move_to(" in script and "delete(" in script
    run = subprocess.run([sys.executable, "-c", script], input="y\n", capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "moved").is_dir()
    assert len(cli_lines) == 3
    for k, line in enumerate(cli_lines):
        args = [str(paths.get(a, a)) for a in shlex.split(line.split("#")[0])[2:]]
        where = tmp_path / f"cli-{k}"  # the working folder: pictures in it, the three files land there
        shutil.copytree(root / "folder2", where)
        cli = subprocess.run([sys.executable, "-m", "imgindex.cli", "difpy", *args],
                             capture_output=True, text=True, timeout=120, cwd=where)
        assert cli.returncode == 0, (line, cli.stderr)
        assert len(list(where.glob("difPy_*"))) == 3
