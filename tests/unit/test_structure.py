"""The structure docs/design.md describes, held against the code's own imports.

Every import of the package (module level or inside a function: a lazy import is still a
dependency) is read with ``ast``; the tests fail on an import cycle, on a module importing a
layer above its own, and on a workload named outside its package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from serverless_hpc import workloads

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "serverless_hpc"

#: docs/design.md, "The layers": top first. A module belongs to the first prefix it matches.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "entry points",
        (
            "serverless_hpc.cli",
            "serverless_hpc.cli_bench",
            "serverless_hpc.cli_args",
            "serverless_hpc.project",
            "serverless_hpc.serve",
            "serverless_hpc.aws.cli",
            "serverless_hpc.openwhisk.cli",
            "serverless_hpc.report.__main__",
        ),
    ),
    ("driver", ("serverless_hpc.driver",)),
    ("report", ("serverless_hpc.report", "serverless_hpc.picks", "serverless_hpc.charts")),
    (
        "targets",
        (
            "serverless_hpc.targets",
            "serverless_hpc.worker",
            "serverless_hpc.aws",
            "serverless_hpc.openwhisk",
        ),
    ),
    ("workloads", ("serverless_hpc.workloads", "serverless_hpc.handler")),
    ("foundations", ("serverless_hpc",)),
)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (the deepest existing module of each name)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for imported in names:
            dep = imported
            while dep not in MODULES and "." in dep:
                dep = dep.rsplit(".", 1)[0]
            if dep in MODULES and dep != name and dep.startswith("serverless_hpc"):
                found.add(dep)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer")


def _is_parent(pkg: str, module: str) -> bool:
    return module.startswith(pkg + ".")


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
        for a, deps in GRAPH.items()
        for b in deps
        if _layer(b) < _layer(a) and not _is_parent(b, a)
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    # a package's __init__ re-exporting its own modules is not a cycle between rooms
    graph = {a: {b for b in deps if not _is_parent(a, b)} for a, deps in GRAPH.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_run_directory_imports_nothing_above_it() -> None:
    # rundir is the contract everyone reads: it must not know the driver, report or dashboard
    above = {"serverless_hpc.driver", "serverless_hpc.report", "serverless_hpc.serve"}
    for name, deps in GRAPH.items():
        if name.startswith("serverless_hpc.rundir"):
            assert not {d for d in deps if any(d.startswith(a) for a in above)}, name


@pytest.mark.parametrize("workload", sorted(workloads.names()))
def test_no_workload_is_named_outside_its_package(workload: str) -> None:
    # GIVEN every source file of the package outside workloads/<name>/
    pattern = re.compile(rf"[\"'.]{re.escape(workload)}[\"'.]")
    allowed = PACKAGE / "workloads" / workload
    # the dataset's own package names its splits (train, test): not workloads
    dataset = PACKAGE / "data"
    offenders = []
    for path in PACKAGE.rglob("*"):
        if path.suffix not in (".py", ".js", ".j2", ".html") or allowed in path.parents:
            continue
        if dataset in path.parents:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0] if path.suffix == ".py" else line
            if pattern.search(code) and not _is_exempt(workload, code):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    # THEN none names the workload (by package, module or a string)
    assert offenders == []


def _is_exempt(workload: str, code: str) -> bool:
    """Uses of a word that is not the workload: the ``train``/``test`` dataset splits and
    the ``train`` image kind (a runtime image, not a workload)."""
    if workload == "train":
        return bool(re.search(r"split|Split|image_train|Image\.|TRAIN = \"train\"", code))
    return False


def test_report_rows_share_one_key_table() -> None:
    # a report holds one row per record: each must cost its values, not a dict of its own
    # (CPython shares the keys of at most 29 attributes; one field more doubles the rows)
    import sys

    from serverless_hpc.rundir.record import REPORT_FIELDS, record_row

    rows = [record_row({k: i for k in REPORT_FIELDS}) for i in range(3)]
    assert sys.getsizeof(rows[-1]) < sys.getsizeof(dict(rows[-1]))
