"""The layering of the package: data flow from the bottom up, no import running back up, no cycle.

Every import is counted, those inside functions too: a lazy import that runs back up is the
same dependency as one at the top of a module, only hidden. The checks read the source with
``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xaibids"

#: xaibids' subpackages and top-level modules, lowest layer first. A module may import its own
#: layer and those below it. ``xaibids`` itself (``__init__``: the version) is below all.
LAYERS = (
    ("errors", "threads", "fileio", "grids"),  # import nothing of xaibids
    ("config",),
    ("inputs",),  # BIDS input
    ("features",),  # timecourses, components, volumes
    ("models",),
    ("attribution",),  # Captum on the models
    ("learning",),  # folds, ensembles, their attributions
    ("stats",),  # importance, selection, verdict
    ("interfaces",),  # Nipype interfaces of the functions above
    ("outputs",),  # derivatives, maps, methods text
    ("reports",),
    ("workflows",),  # Nipype workflows: wiring only
    ("levels",),  # the participant and group levels the command line calls
    ("simulate", "ingest"),  # datasets for tests, benchmarks and users
    ("validation",),  # scores against ground truth, benchmarks
    ("cli",),  # parsing and calling
)

#: Import cycles known and not yet removed, each with the step of issue 26 that removes it
#: (none left: the last, ``cli.demo`` <-> ``cli.run``, went with ``cli.command``).
KNOWN_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path) -> dict[str, set[str]]:
    """Each module of the package at ``root`` → the xaibids names it imports (anywhere in it)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{path}: relative import; xaibids imports absolutely")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == root.name:
                targets |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.split(".")[0] == root.name}
        found[name] = targets
    return found


def resolve(target: str, modules) -> str:
    """The module an imported name lives in (``pkg.mod.func`` → ``pkg.mod``)."""
    while target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # the package itself
    for rank, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return rank
    raise AssertionError(f"{module} belongs to no layer of tests/test_architecture.py's LAYERS")


def upward_imports(root: Path) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a module imports one of a higher layer."""
    graph = imports(root)
    return sorted((module, resolve(target, graph))
                  for module, targets in graph.items() for target in targets
                  if layer_of(resolve(target, graph)) > layer_of(module))


def import_cycles(root: Path) -> list[frozenset[str]]:
    """Sets of modules that import each other, directly or through others. A module's import
    of a package it belongs to is left out: Python imports the package first anyway."""
    graph = imports(root)
    edges = nx.DiGraph()
    edges.add_nodes_from(graph)
    for module, targets in graph.items():
        for target in targets:
            imported = resolve(target, graph)
            if imported != module and not module.startswith(imported + "."):
                edges.add_edge(module, imported)
    return [frozenset(c) for c in nx.strongly_connected_components(edges) if len(c) > 1]


def test_no_module_imports_a_higher_layer():
    assert upward_imports(PACKAGE) == []


def test_the_bottom_layer_imports_nothing_of_xaibids():
    """The bottom layer, which every layer may import, depends on none of them."""
    graph = imports(PACKAGE)
    assert {name: graph[f"xaibids.{name}"] for name in LAYERS[0]} == {name: set() for name in LAYERS[0]}


def test_no_import_cycle_but_the_known_ones():
    assert set(import_cycles(PACKAGE)) <= KNOWN_CYCLES


def test_known_cycles_still_exist():
    """A removed cycle leaves KNOWN_CYCLES, so that it cannot come back unnoticed."""
    assert KNOWN_CYCLES <= set(import_cycles(PACKAGE))


@pytest.fixture
def planted(tmp_path):
    """A copy of the package's layout with empty modules, to plant violations in."""
    root = tmp_path / "xaibids"
    for path in PACKAGE.rglob("*.py"):
        copy = root / path.relative_to(PACKAGE)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text("")
    return root


def test_the_layer_check_fails_on_a_planted_violation(planted):
    assert upward_imports(planted) == []
    (planted / "models" / "__init__.py").write_text(
        "def build():\n    from xaibids.cli.run import main\n")
    assert upward_imports(planted) == [("xaibids.models", "xaibids.cli.run")]


def test_the_cycle_check_fails_on_a_planted_cycle(planted):
    assert import_cycles(planted) == []
    (planted / "stats" / "group.py").write_text("from xaibids.stats.verdict import x\n")
    (planted / "stats" / "verdict.py").write_text("import xaibids.stats.group\n")
    assert import_cycles(planted) == [frozenset({"xaibids.stats.group", "xaibids.stats.verdict"})]
