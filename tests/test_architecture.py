"""The package's shape is checked, not hoped for: the import graph (every import, function-level
too), which stage may import which, and the size of modules and classes."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "imgindex"

# Each stage, and what it may import from the package (besides itself). Data flows downwards.
ALLOWED = {
    "imgindex.types": set(),
    "imgindex.errors": set(),
    "imgindex.humanize": set(),
    "imgindex.workers": {"imgindex.errors"},
    "imgindex.cluster": {"imgindex.errors", "imgindex.workers"},  # the second executor: a Dask cluster
    "imgindex.db": {"imgindex.errors", "imgindex.types", "imgindex.migrations"},
    # keys are made where tensors are made (pure numpy), and a new image's points (pixels, tone and
    # rank) kept as it is written
    "imgindex.scan": {"imgindex.db", "imgindex.errors", "imgindex.types", "imgindex.workers", "imgindex.cluster",
                      "imgindex.compare.keys", "imgindex.compare.points", "imgindex.compare.tone_points"},
    "imgindex.compare": {"imgindex.db", "imgindex.errors", "imgindex.types", "imgindex.workers", "imgindex.cluster",
                         "imgindex.scan"},
    "imgindex.actions": {"imgindex.db", "imgindex.errors", "imgindex.types", "imgindex.scan"},
    "imgindex.report": {"imgindex.db", "imgindex.errors", "imgindex.types", "imgindex.workers", "imgindex.scan",
                        "imgindex.compare", "imgindex.humanize"},
    # the watcher drives scans and searches through the facade it is given, never the stages
    "imgindex.watch": {"imgindex.db", "imgindex.errors", "imgindex.types", "imgindex.scan.discover"},
    "imgindex.decide": {"imgindex.db", "imgindex.errors", "imgindex.types", "imgindex.scan.discover"},
    "imgindex.api": {"imgindex.db", "imgindex.errors", "imgindex.types", "imgindex.scan", "imgindex.compare",
                     "imgindex.decide",
                     "imgindex.actions", "imgindex.report", "imgindex.watch"},
    "imgindex.progress": {"imgindex.types", "imgindex.humanize"},
    # the review app: reads the index directly, decides and acts only through the facade
    "imgindex.serve": {"imgindex.api", "imgindex.db", "imgindex.errors", "imgindex.types", "imgindex.scan.decode"},
    "imgindex.compat": {"imgindex.api", "imgindex.types", "imgindex.errors", "imgindex.progress"},
    "imgindex.cli": {"imgindex.api", "imgindex.types", "imgindex.errors", "imgindex.progress", "imgindex.humanize",
                     "imgindex.compat", "imgindex.serve.server",
                     "imgindex.cluster.connect"},  # find opens one cluster for its scan and its search  # compat: `imgindex difpy` is the difPy-shaped API's command line
    "imgindex._worker_main": {"imgindex.workers"},
    "imgindex.__main__": {"imgindex.cli"},
    "imgindex": set(),  # __init__ names its exports as strings and imports them on first use
}
# Imports inside functions are for heavy dependencies only a few commands need.
FUNCTION_LEVEL = {
    ("imgindex.api", "imgindex.report.write"),  # Jinja2
    ("imgindex.api", "imgindex.watch.watcher"),  # watchdog's observers
    ("imgindex.cli.serve_command", "imgindex.serve.server"),  # Starlette, uvicorn
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(imported imgindex module, inside a function?) for every import in the module."""
    tree = ast.parse(path.read_text())
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] if base.startswith("imgindex") else []
            targets = [t if _resolve(t) else base for t in targets]
        else:
            continue
        out += [(t, id(node) in inside) for t in targets if t.split(".")[0] == "imgindex"]
    return out


def _resolve(name: str) -> str | None:
    mods = modules()
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def stage_of(name: str) -> str:
    """The ALLOWED key a module belongs to (the longest that prefixes it)."""
    return max((k for k in ALLOWED if name == k or name.startswith(k + ".")), key=len)


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: {_resolve(t) or t for t, _ in imports(name, path)} - {name} for name, path in mods.items()}


def test_every_module_belongs_to_a_stage_and_imports_only_what_its_stage_may():
    wrong = []
    for name, targets in graph().items():
        stage = stage_of(name)
        for target in targets:
            if target.startswith(stage + ".") or target == stage or name.startswith(target + "."):
                continue  # within its own stage, or its own package's __init__
            if not any(target == a or target.startswith(a + ".") for a in ALLOWED[stage]):
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_the_import_graph_has_no_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state and nxt in edges:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_function_level_imports_are_only_the_listed_heavy_ones():
    found = {(name, _resolve(t)) for name, path in modules().items() for t, inside in imports(name, path) if inside}
    assert found == FUNCTION_LEVEL


def test_only_the_workers_module_and_the_local_cluster_start_processes():
    starters = {"imgindex.workers", "imgindex.cluster.connect"}  # the pool; the host of --scheduler local
    users = [name for name, path in modules().items()
             if name not in starters and ("WorkerPool" in path.read_text() or "subprocess" in path.read_text())]
    assert users == []


# The facade is one short method per user-facing operation: it grows with the product's surface,
# not its logic, so it has a limit of its own (its methods only check options and call one stage).
CLASS_LIMITS = {"imgindex.api.Index": 250}


def test_no_module_over_400_lines_and_no_class_over_150():
    long_modules, long_classes = [], []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > 400:
            long_modules.append(f"{name}: {text.count(chr(10))}")
        for node in ast.walk(ast.parse(text)):
            limit = CLASS_LIMITS.get(f"{name}.{getattr(node, 'name', '')}", 150)
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > limit:
                long_classes.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1}")
    assert long_modules == [] and long_classes == []
    facade = next(n for n in ast.parse((PACKAGE / "api.py").read_text()).body
                  if isinstance(n, ast.ClassDef) and n.name == "Index")
    too_long = [f.name for f in facade.body if isinstance(f, ast.FunctionDef) and f.end_lineno - f.lineno + 1 > 25]
    assert too_long == []  # what keeps the facade a facade: no method of it does real work


def test_every_subpackage_says_what_flows_in_and_out():
    for name, path in modules().items():
        if path.name == "__init__.py" and name != "imgindex":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert len(doc) > 40, f"{name} has no docstring saying what flows in and out"


def test_every_subpackage_ships_in_the_wheel():
    """pyproject lists packages by hand: a new stage missing there works in an editable install and
    breaks `pip install .` (README's first command)."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py") for p in [p.parent]}
    assert found <= listed
