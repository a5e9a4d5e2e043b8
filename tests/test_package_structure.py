"""The shape of course_utils: no import cycle, layers only import downwards, authoring tools apart.

Every import is counted, including the ones inside functions (lazy imports are still edges).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"

#: The teaching modules in layers: a module may import from its own layer (without a cycle) or a
#: lower one, never from a higher one. Authoring modules sit above all of them.
LAYERS: list[set[str]] = [
    {"core", "voc"},                                                   # plumbing and facts: numpy, PIL
    {"viz", "imaging", "metrics", "voc_generated", "download"},        # topics that need only the facts
    {"models", "pretrained", "receptive_field", "layers"},             # networks (torch)
    {"voc_dataset", "fashion_mnist", "train"},                         # pipelines built on all of the above
    {"session"},                                                       # what the setup cell runs
    {"__init__"},                                                      # the package's front door
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts)] = path
    return found


def _resolve(parts: list[str], known: set[str]) -> str:
    """The module name for ``parts`` below course_utils: a package resolves to its ``__init__``."""
    name = ".".join(parts)
    return name if name in known else ".".join(parts + ["__init__"])


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every course_utils module that module ``name`` imports, anywhere in its file."""
    package = name.split(".")[:-1]  # e.g. ["authoring"] for authoring.grading, [] for voc and __init__
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, *rest = alias.name.split(".")
                if top == "course_utils":
                    edges.add(_resolve(rest, known))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y / from ..core import z
                base = package[:len(package) - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "course_utils":
                parts = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:  # `from . import viz` imports a module, `from .voc import X` a name
                sub = ".".join(parts + [alias.name])
                edges.add(sub if sub in known else _resolve(parts, known))
    edges.discard(name)
    return edges & known


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_the_graph_is_seen(graph):
    # guards the parser itself: a few edges that must be there
    assert "core" in graph["voc_dataset"] and "voc" in graph["viz"]
    assert "authoring.conventions" in graph["authoring.execute"]  # (modules the student release has too)
    assert "core" in graph["authoring.execute"] and "core" in graph["authoring.conventions"]
    assert {"core", "session"} <= graph["__init__"]


def test_no_import_cycle(graph):
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_every_teaching_module_has_a_layer(graph):
    teaching = {n for n in graph if not n.startswith("authoring")}
    assert teaching == set().union(*LAYERS), "put the new module in LAYERS (and in the README's module map)"


def test_layers_only_import_downwards_and_never_authoring(graph):
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    bad = []
    for name, targets in graph.items():
        if name.startswith("authoring"):
            continue
        for target in targets:
            if target.startswith("authoring"):
                bad.append(f"{name} (teaching) imports {target} (authoring)")
            elif layer[target] > layer[name]:
                bad.append(f"{name} (layer {layer[name]}) imports {target} (layer {layer[target]})")
    assert bad == []


def test_no_module_dominates_the_package():
    lines = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    total = sum(lines.values())
    assert max(lines.values()) <= 0.2 * total, sorted(lines.items(), key=lambda kv: -kv[1])[:3]
    for name in ("voc", "voc_generated", "download", "voc_dataset"):
        assert lines[name] <= 300, f"{name} has {lines[name]} lines; each data module is readable in one sitting"
