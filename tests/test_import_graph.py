"""The import graph runs one way: config ← telephony ← journal ← recordings ← hotline.web ←
hotline (app, cli). Read from the source (every import, lazy ones inside functions too), so a
new upward import or cycle fails here, not in a newcomer's head. ``KNOWN`` lists the edges
that still point the wrong way (issue 11), each with the reason; the list may only shrink."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "telephony", "journal", "recordings", "hotline")

KNOWN = {
    # Model guards are installed when the models are imported.
    ("journal.models", "journal.guards"),
}


def _layer(module: str) -> int:
    if module.startswith("hotline.web"):
        return 4
    return {"config": 0, "telephony": 1, "journal": 2, "recordings": 3, "hotline": 5}[
        module.split(".")[0]]


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _edges() -> set[tuple[str, str]]:
    modules = _modules()
    edges = set()
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            edges |= {(name, target) for target in targets
                      if target in modules and target != name}
    return edges


def _cycles(edges: set[tuple[str, str]]) -> list[set[str]]:
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = {(a, b) for a, b in _edges() if _layer(b) > _layer(a)}
    assert upward - KNOWN == set()


def test_no_import_cycles_but_the_known_ones() -> None:
    edges = _edges() - KNOWN
    assert _cycles(edges) == []


def test_the_known_list_only_names_edges_that_still_exist() -> None:
    edges = _edges()
    assert KNOWN - edges == set()
