"""The integration's modules import each other without a circle, counting imports made only for type checking."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "custom_components.miloco"
ROOT = Path(__file__).parent.parent / "custom_components" / "miloco"


def _module_name(path: Path) -> str:
    """Return the dotted name of a module file of the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Return the package's modules a module imports, anywhere in it (TYPE_CHECKING blocks included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            # `from . import x` and `from .engine import check` import modules, not names: the package itself
            # counts only when a name is taken from it (every submodule import loads it, which is no edge).
            submodules = [f"{origin}.{alias.name}" for alias in node.names]
            targets = [module for module in submodules if module in modules]
            if len(targets) < len(submodules):
                targets.append(origin)
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Return each module of the integration with the package modules it imports."""
    paths = {_module_name(path): path for path in ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: _imports(path, name, modules) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import circle (its modules, first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_graph_sees_relative_absolute_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .engine import check\n"
        "import custom_components.miloco.const\n"
        "if TYPE_CHECKING:\n"
        "    from .runtime import MilocoRuntime\n",
        encoding="utf-8",
    )
    modules = {f"{PACKAGE}.{name}" for name in ("engine", "engine.check", "const", "runtime", "probe")}
    # `from .engine import check` takes a module, so the package engine is no edge of its own.
    assert _imports(source, f"{PACKAGE}.probe", modules) == {
        f"{PACKAGE}.engine.check",
        f"{PACKAGE}.const",
        f"{PACKAGE}.runtime",
    }
    # Two levels up from the evaluation toolkit, and the package's own __init__ is a module too.
    assert f"{PACKAGE}.engine.parse" in import_graph()[f"{PACKAGE}.engine.evaluation.runner"]
    assert PACKAGE in import_graph()
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_asking_imports_nothing_that_imports_the_watcher() -> None:
    graph = import_graph()
    reached: set[str] = set()
    pending = [f"{PACKAGE}.asking"]
    while pending:
        for target in graph[pending.pop()]:
            if target not in reached:
                reached.add(target)
                pending.append(target)
    assert f"{PACKAGE}.watcher" not in reached
    assert f"{PACKAGE}.runtime" not in reached


def test_no_import_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
