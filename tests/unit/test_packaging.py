"""What the package imports is what ``pyproject.toml`` declares, read statically from the source.

Every third-party import of ``exporter/`` must come from a distribution that the install running it
declares: core modules from ``dependencies``, the optional subsystems (``mlflow_bridge/``, ``otel/``) from
core or their own extra, and an import guarded by ``except ImportError`` (or made lazily inside a
function) from core or an extra that is not ``dev``. The tests, benchmarks and examples may also use
``dev``. A new ``import httpx`` in the demo without ``httpx`` in the core dependencies fails here,
without a fresh venv.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ..support import REPO

CORE = "core"
# Subpackages whose every import belongs to an extra: the feature the extra installs.
FEATURE_EXTRAS = {"mlflow_bridge": "mlflow", "otel": "otel"}
DEV = "dev"


def canonical(name: str) -> str:
    """PEP 503 name: ``PyYAML`` and ``pyyaml``, ``prometheus_client`` and ``prometheus-client`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def declared() -> dict[str, frozenset[str]]:
    """Install (``core`` or an extra's name) -> the distributions it declares."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installs = {CORE: project["dependencies"], **project["optional-dependencies"]}
    return {name: frozenset(canonical(Requirement(r).name) for r in reqs) for name, reqs in installs.items()}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # the dotted name as written, e.g. ``opentelemetry.sdk.trace``
    optional: bool  # inside ``try: ... except ImportError`` or a function body


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def imports(path: Path) -> Iterator[Import]:
    """The absolute imports of a file, each with whether it is optional where it stands."""

    def walk(node: ast.AST, optional: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = optional
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner = True
            elif isinstance(child, ast.Try) and any(_catches_import_error(h) for h in child.handlers):
                # Only the try body is guarded; handlers and else/finally run their imports unguarded.
                for stmt in child.body:
                    yield from walk_one(stmt, True)
                for part in (*child.handlers, *child.orelse, *child.finalbody):
                    yield from walk_one(part, optional)
                continue
            yield from walk_one(child, inner)

    def walk_one(node: ast.AST, optional: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name, optional)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                # `from opentelemetry import context` imports the submodule opentelemetry.context
                yield Import(path, node.lineno, f"{node.module}.{alias.name}", optional)
        else:
            yield from walk(node, optional)

    yield from walk(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)


def is_third_party(module: str, path: Path) -> bool:
    """Neither the standard library, nor the package, nor a sibling module of a script (``bench/``)."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in ("__future__", "exporter", "tests"):
        return False
    return not ((path.parent / f"{top}.py").is_file() or (path.parent / top / "__init__.py").is_file())


@cache
def _top_level_names() -> dict[str, list[str]]:
    return metadata.packages_distributions()


@cache
def _dist_files(dist: str) -> frozenset[str]:
    files = metadata.distribution(dist).files or []
    return frozenset(str(f) for f in files)


@cache
def providers(module: str) -> frozenset[str]:
    """The installed distributions whose files define ``module`` (or its closest parent package).

    A top-level name shared by several distributions (``opentelemetry``, or ``mlflow`` split into
    ``mlflow``, ``mlflow-skinny`` and ``mlflow-tracing``) is resolved by which one ships the file.
    """
    parts = module.split(".")
    candidates = _top_level_names().get(parts[0], [])
    if len(set(candidates)) <= 1:
        return frozenset(canonical(c) for c in candidates)
    for n in range(len(parts), 0, -1):
        stem = "/".join(parts[:n])
        found = {c for c in candidates if {f"{stem}.py", f"{stem}/__init__.py"} & _dist_files(c)}
        if found:
            return frozenset(canonical(c) for c in found)
    return frozenset(canonical(c) for c in candidates)


@cache
def _requires(dist: str) -> frozenset[str]:
    return frozenset(canonical(Requirement(r).name) for r in metadata.requires(dist) or [])


def satisfied_by(module: str, allowed: frozenset[str]) -> bool:
    """Whether a distribution in ``allowed`` provides ``module``: itself, or a split part of it (a
    distribution it requires that ships files under the same top-level package, as ``mlflow`` requires
    ``mlflow-skinny``). Requirements that merely happen to be installed (``anyio`` through Starlette)
    do not count: what the code imports, the project declares."""
    found = providers(module)
    if found & allowed:
        return True
    top = module.split(".")[0]
    for dist in allowed:
        try:
            own_top = {f.split("/")[0] for f in _dist_files(dist)}
        except metadata.PackageNotFoundError:
            continue
        if top in own_top and found & _requires(dist):
            return True
    return False


def allowed_for(imp: Import, root: Path, decl: dict[str, frozenset[str]]) -> tuple[str, ...]:
    """The installs an import may be satisfied by."""
    extras = tuple(name for name in decl if name not in (CORE, DEV))
    rel = imp.path.relative_to(root)
    if root.name != "exporter":  # tests, benchmarks, examples: the developer's install
        return (CORE, *extras, DEV)
    feature = FEATURE_EXTRAS.get(rel.parts[0]) if len(rel.parts) > 1 else None
    if feature is not None:
        return (CORE, feature)
    if imp.optional:
        return (CORE, *extras)
    return (CORE,)


def undeclared(root: Path, decl: dict[str, frozenset[str]] | None = None) -> list[str]:
    """One line per third-party import under ``root`` that the installs allowed there don't declare."""
    decl = declared() if decl is None else decl
    problems = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent)
        for imp in imports(path):
            if not is_third_party(imp.module, path):
                continue
            installs = allowed_for(imp, root, decl)
            allowed = frozenset().union(*(decl[i] for i in installs))
            found = providers(imp.module)
            if not found:
                # Declared for another Python only (``tomli; python_version < '3.11'``) is declared.
                if canonical(imp.module.split(".")[0]) not in allowed:
                    problems.append(f"{where}:{imp.line}: {imp.module}: no installed distribution has it")
            elif not satisfied_by(imp.module, allowed):
                dists = ", ".join(sorted(found))
                problems.append(f"{where}:{imp.line}: {imp.module} (from {dists}) is not in {' or '.join(installs)}")
    return problems


def test_the_package_imports_only_what_its_installs_declare() -> None:
    assert undeclared(REPO / "exporter") == []


@pytest.mark.parametrize("folder", ["tests", "bench", "examples"])
def test_tests_benchmarks_and_examples_import_only_declared_distributions(folder: str) -> None:
    assert undeclared(REPO / folder) == []


# -- the checker itself, on small files --------------------------------------------------------------------


def _write_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "exporter"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checker_finds_an_undeclared_import_where_the_demo_had_one(tmp_path: Path) -> None:
    root = _write_package(
        tmp_path,
        {
            "demo/traffic.py": "import httpx\nimport yaml\n",
            "otel/spans.py": "try:\n    from opentelemetry.sdk.trace import Span\nexcept ImportError:\n    pass\n",
            "drift/baseline.py": "def load():\n    import mlflow.artifacts\n",
            "recorder.py": "import numpy\nimport pytest\n",
            "capture/usage.py": "try:\n    import hypothesis\nexcept ImportError:\n    pass\n",
        },
    )
    decl = {
        CORE: frozenset({"pyyaml"}),
        "mlflow": frozenset({"mlflow", "numpy"}),
        "otel": frozenset({"opentelemetry-sdk"}),
        DEV: frozenset({"httpx", "pytest", "hypothesis"}),
    }
    assert undeclared(root, decl) == [
        # A dev-only distribution does not count for the package, guarded or not.
        "exporter/capture/usage.py:2: hypothesis (from hypothesis) is not in core or mlflow or otel",
        "exporter/demo/traffic.py:1: httpx (from httpx) is not in core",
        # An extra's distribution imported unguarded at the top of a core module; a lazy one is fine.
        "exporter/recorder.py:1: numpy (from numpy) is not in core",
        "exporter/recorder.py:2: pytest (from pytest) is not in core",
    ]


def test_imports_know_whether_they_are_guarded(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "import a\n"
        "try:\n    import b\n    from c.d import e\nexcept (ValueError, ImportError):\n    import f\n"
        "try:\n    import g\nexcept KeyError:\n    pass\n"
        "def h():\n    import i\n"
        "from . import j\n"
    )
    found = [(i.module, i.optional) for i in imports(path)]
    assert found == [("a", False), ("b", True), ("c.d.e", True), ("f", False), ("g", False), ("i", True)]


@pytest.mark.parametrize(
    ("module", "dists"),
    [
        ("yaml", {"pyyaml"}),
        ("prometheus_client.exposition", {"prometheus-client"}),
        ("opentelemetry.sdk.trace", {"opentelemetry-sdk"}),
        ("opentelemetry.trace.propagation", {"opentelemetry-api"}),
    ],
)
def test_modules_resolve_to_the_distribution_that_ships_them(module: str, dists: set[str]) -> None:
    assert providers(module) == dists
    # mlflow is split (mlflow, mlflow-skinny, mlflow-tracing: which ship a module depends on the release).
    assert "mlflow-skinny" in providers("mlflow.entities.Metric")


def test_a_split_distribution_counts_for_its_parts_and_a_mere_dependency_does_not() -> None:
    assert satisfied_by("mlflow.entities", frozenset({"mlflow"}))  # mlflow-skinny ships it, mlflow requires it
    assert not satisfied_by("anyio", frozenset({"starlette"}))  # installed with Starlette, still undeclared
