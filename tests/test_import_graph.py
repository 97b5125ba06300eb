"""The architecture as a test: `trainables/` is the ground floor and the import graph has no cycle.

Imports are read from the source with `ast` (module level and inside functions alike), so a hidden import
fails as surely as a visible one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainables", "study", "search_spaces", "analysis")
FORBIDDEN_IN_TRAINABLES = ("study", "analysis", "search_spaces", "ray", "mlflow")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported_names(path: Path, modules: dict[str, Path], package: str | None = None) -> list[tuple[str, int]]:
    """(module imported, line) for every import statement of the file, at any depth; `from P import m` names
    the submodule P.m when it is one. `package` anchors relative imports (default: the file's own)."""
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in modules else base, node.lineno))
    return found


def edges(level) -> dict[str, set[str]]:
    """The project's import graph with every module mapped by `level` (module, subpackage or top package).
    Arrows between a package and one of its own subpackages are containment, not layering, and are left out."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        source = level(name, path)
        for target, _ in imported_names(path, modules):
            if target in modules and not related(source, level(target, modules[target]), level is by_module):
                graph.setdefault(source, set()).add(level(target, modules[target]))
    return graph


def related(a: str, b: str, modules: bool) -> bool:
    """The same node; for packages also one inside the other."""
    return a == b or (not modules and (a.startswith(b + ".") or b.startswith(a + ".")))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def by_module(name: str, path: Path) -> str:
    return name


def by_package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def by_top_package(name: str, path: Path) -> str:
    return name.split(".")[0]


def test_trainables_imports_nothing_above_it_nor_ray_or_mlflow():
    modules = project_modules()
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for name, path in modules.items() if name.split(".")[0] == "trainables"
        for target, line in imported_names(path, modules)
        if target.split(".")[0] in FORBIDDEN_IN_TRAINABLES
    ]
    assert not offending, "trainables/ must stay the ground floor:\n" + "\n".join(offending)


@pytest.mark.parametrize("level", [by_module, by_package, by_top_package], ids=["modules", "packages", "top-level"])
def test_import_graph_has_no_cycle(level):
    cycle = find_cycle(edges(level))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_see_hidden_imports(tmp_path):
    """The reader finds an import inside a function, and the cycle finder finds a planted cycle."""
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    import ray.train\n    from study.tracking import x\n"
                      "    from .sibling import y\n")
    found = imported_names(source, {"trainables.sibling": source}, package="trainables")
    assert found == [("os", 1), ("ray.train", 4), ("study.tracking", 5), ("trainables.sibling", 6)]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
