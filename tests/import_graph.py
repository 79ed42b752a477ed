"""The import graph of ``src/nsvae``, read from the source (every import, inside functions too).

Run ``python tests/import_graph.py`` for a summary: import cycles, the modules that
``nsvae.training`` reaches, and imports that point up the layers of the design (section 4):
a module may import only its own package and the layers below it. The tests in
``test_import_graph.py`` assert the same properties.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"

# Lowest first; a package may import only packages of a lower (or its own) layer.
LAYERS = (
    (
        "nsvae",
        "nsvae.errors",
        "nsvae.files",
        "nsvae.checks",
        "nsvae.device",
        "nsvae.gaussian",
        "nsvae.precision",
        "nsvae.provenance",
    ),
    ("nsvae.data", "nsvae.models"),
    ("nsvae.objectives",),
    ("nsvae.config",),
    ("nsvae.rundir",),
    ("nsvae.training", "nsvae.metrics", "nsvae.synergy"),
    ("nsvae.viz",),
    ("nsvae.experiment",),
    ("nsvae.sweep",),
    ("nsvae.api", "nsvae.cli"),
)
# The package root re-exports the front door's verbs lazily (PEP 562 ``__getattr__``): the one
# import that points up, and no cycle, since nothing below imports it back.
FRONT_DOOR = ("nsvae", "nsvae.api")


def module_names(root: Path = SOURCE) -> dict[str, Path]:
    """Dotted name -> file of every module under ``root/nsvae``."""
    names = {}
    for path in sorted((root / "nsvae").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``name`` imports anywhere in its file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = SOURCE) -> dict[str, set[str]]:
    """Module -> the nsvae modules it imports (but the root's lazy :data:`FRONT_DOOR`)."""
    names = module_names(root)
    graph = {name: imports_of(name, path, set(names)) for name, path in names.items()}
    graph[FRONT_DOOR[0]].discard(FRONT_DOOR[1])
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or not (its parent packages included)."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        parents = [".".join(node.split(".")[:i]) for i in range(1, node.count(".") + 1)]
        for target in [*graph.get(node, ()), *parents]:
            if target in graph and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest layer entry that ``module`` belongs to."""
    best, depth = None, -1
    for number, entries in enumerate(LAYERS):
        for entry in entries:
            inside = module == entry or module.startswith(entry + ".")
            if inside and entry.count(".") > depth and (entry != "nsvae" or module == "nsvae"):
                best, depth = number, entry.count(".")
    if best is None:
        raise KeyError(f"{module} is in no layer of LAYERS")
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer."""
    return sorted(
        (source, target)
        for source, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(source)
    )


def main() -> None:
    graph = import_graph()
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports")
    found = cycles(graph)
    print(f"cycles: {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    up = upward_imports(graph)
    print(f"upward imports: {len(up)}")
    for source, target in up:
        print(f"  {source} -> {target}")
    train = reachable(graph, "nsvae.training")
    above = sorted(m for m in train if m.startswith(("nsvae.metrics", "nsvae.viz")))
    print(f"nsvae.training reaches metrics/viz: {', '.join(above) or 'none'}")


if __name__ == "__main__":
    main()
