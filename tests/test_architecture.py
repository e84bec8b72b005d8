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


#: Most lines in a module, and in a function other than the argument parser (issue 26).
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 700, 100
#: Modules and functions still over those sizes, with their lengths: the list may only shrink
#: (a longer entry, or a new one, fails), so that what was split stays split.
KNOWN_LONG_MODULES: dict[str, int] = {}
KNOWN_LONG_FUNCTIONS = {
    "xaibids.workflows.ica.run_group_ica": 175,
    "xaibids.learning.ensemble.maps.attribute_fold": 164,
    "xaibids.simulate.voxels.simulate_voxel_patterns": 161,
    "xaibids.simulate.t1.simulate_t1_atrophy": 154,
    "xaibids.simulate.bold.simulate_bold": 147,
    "xaibids.learning.training.train_models_batched": 138,
    "xaibids.attribution.ig.adaptive_integrated_gradients": 135,
    "xaibids.features.t1.preprocess_t1": 134,
    "xaibids.attribution.perturbation.meaningful_perturbation": 132,
    "xaibids.stats.group.compute_group_statistics": 120,
    "xaibids.stats.importance.group_importance": 119,
    "xaibids.stats.connectivity.connectivity_statistics": 115,
    "xaibids.learning.ensemble.maps._attribute_plan": 115,
    "xaibids.learning.training.train_model": 114,
    "xaibids.learning.ensemble.permutation.permutation_test": 104,
    "xaibids.learning.dataset.assemble_trial_dataset": 101,
}
#: The argument parser is one long list of options by design (fMRIPrep's is too).
PARSER = "xaibids.cli.parser.get_parser"


def long_modules_and_functions(root: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Modules over :data:`MAX_MODULE_LINES` and functions (docstrings included) over
    :data:`MAX_FUNCTION_LINES` lines, with their lengths."""
    modules, functions = {}, {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            modules[f"xaibids/{path.relative_to(root).as_posix()}"] = len(text.splitlines())
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                name = f"{module_name(path, root)}.{node.name}"
                if length > MAX_FUNCTION_LINES and name != PARSER:
                    functions[name] = length
    return modules, functions


def test_modules_and_functions_stay_short():
    modules, functions = long_modules_and_functions(PACKAGE)
    grown = {name: n for name, n in modules.items() if n > KNOWN_LONG_MODULES.get(name, 0)}
    grown |= {name: n for name, n in functions.items() if n > KNOWN_LONG_FUNCTIONS.get(name, 0)}
    assert grown == {}, f"over {MAX_MODULE_LINES} lines per module / {MAX_FUNCTION_LINES} per function"


def test_known_long_entries_are_still_long():
    """An entry split below the limit leaves the list, so that it cannot grow back unnoticed."""
    modules, functions = long_modules_and_functions(PACKAGE)
    assert set(KNOWN_LONG_MODULES) <= set(modules)
    assert set(KNOWN_LONG_FUNCTIONS) <= set(functions)


def test_the_size_check_fails_on_a_planted_long_function(planted):
    (planted / "models" / "__init__.py").write_text(
        "def build():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert long_modules_and_functions(planted)[1] == {"xaibids.models.build": MAX_FUNCTION_LINES + 1}
