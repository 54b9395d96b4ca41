"""The package's shape: dependencies run one way, with no import cycle inside ``exporter/``.

Every import counts, at module level or inside a function (a function-level import does not make a
cycle go away, it only hides it); lazy imports of optional packages (mlflow, opentelemetry) are
outside the package and so are not edges here. Importing ``exporter.a.b`` also imports the package
``exporter.a``, so that edge counts too, except towards the module's own packages (Python has run
their ``__init__`` before the module itself; the root package ``exporter`` is left out for that reason).
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..support import REPO

PACKAGE = REPO / "exporter"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]  # `from pkg import submodule`
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            parts = target.split(".")
            # The module and the packages Python imports on the way to it, but not the root package.
            for i in range(2, len(parts) + 1):
                found.add(".".join(parts[:i]))
    found.discard(name)
    own = name.split(".")
    return found - {".".join(own[:i]) for i in range(1, len(own))}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, set(known)) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycle_inside_the_package() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_the_bottom_layer_imports_nothing_above_it() -> None:
    edges = graph()
    assert edges["exporter.labels"] == set()
    assert edges["exporter.types"] == set()
    assert edges["exporter.checks"] == {"exporter.labels"}
    assert edges["exporter.observations"] == {"exporter.checks"}


def test_sinks_never_see_the_recorder_nor_the_composition_root() -> None:
    edges = graph()
    for module in ("exporter.drift", "exporter.mlflow_bridge"):
        reach = closure(edges, module)
        assert not reach & {"exporter.recorder", "exporter.wiring", "exporter.context"}, module
    assert "exporter.wiring" not in closure(edges, "exporter.otel")


def test_capture_does_not_record() -> None:
    edges = graph()
    for module in ("exporter.capture.response", "exporter.capture.usage"):
        assert not edges[module] & {"exporter.recorder", "exporter.wiring", "exporter.context"}, module


def closure(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in edges.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen
