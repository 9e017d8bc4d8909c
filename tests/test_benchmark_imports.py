"""The benchmarks stand on their own: they never import the tests, and their modules import one way."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
TESTKIT = REPO / "testkit"


def imported_modules(source: Path, package: str) -> set[str]:
    """Return every module a file imports, anywhere in it (functions too), as absolute dotted names."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # A relative import, resolved against the file's own package.
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            modules.add(base)
            # `from benchmarks import report` imports the module benchmarks.report.
            modules.update(f"{base}.{alias.name}" for alias in node.names)
    return modules


def import_graph(folder: Path) -> dict[str, set[str]]:
    """Return, for each module of a package folder, the package's modules it imports."""
    package = folder.name
    names = {f"{package}.{path.stem}" for path in folder.glob("*.py") if path.stem != "__init__"}
    return {
        f"{package}.{path.stem}": imported_modules(path, package) & names
        for path in folder.glob("*.py")
        if path.stem != "__init__"
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle of the graph as the path that closes it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if (cycle := visit(imported)) is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if (cycle := visit(module)) is not None:
            return cycle
    return None


def test_the_benchmarks_never_import_the_tests() -> None:
    offenders = {
        f"{path.name}: {module}"
        for folder in (BENCHMARKS, TESTKIT)
        for path in folder.glob("*.py")
        for module in imported_modules(path, folder.name)
        if module == "tests" or module.startswith("tests.")
    }
    assert not offenders


def test_the_benchmark_modules_import_one_way() -> None:
    graph = import_graph(BENCHMARKS)
    assert len(graph) >= 10
    # The checker is not blind: bench.py reads its report's module, which it must find.
    assert "benchmarks.report" in graph["benchmarks.bench"]
    assert find_cycle(graph) is None, find_cycle(graph)


def test_a_cycle_is_found_where_there_is_one(tmp_path: Path) -> None:
    package = tmp_path / "loop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "first.py").write_text("from loop import second\n")
    # Imported inside a function, as the benchmarks once did to hide a cycle.
    (package / "second.py").write_text("def run():\n    from .third import value\n")
    (package / "third.py").write_text("import loop.first\nvalue = 1\n")
    assert find_cycle(import_graph(package)) == ["loop.first", "loop.second", "loop.third", "loop.first"]
    (package / "third.py").write_text("value = 1\n")
    assert find_cycle(import_graph(package)) is None
