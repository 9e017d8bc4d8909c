"""The engine must stay free of Home Assistant so it can be used (and published) on its own."""

import ast
from pathlib import Path

ENGINE = Path(__file__).parent.parent / "custom_components" / "miloco" / "engine"


def _imported_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_engine_has_python_files() -> None:
    assert len(list(ENGINE.rglob("*.py"))) >= 3


def test_engine_never_imports_homeassistant() -> None:
    offenders = {
        f"{path.relative_to(ENGINE)}: {module}"
        for path in ENGINE.rglob("*.py")
        for module in _imported_modules(path)
        if module == "homeassistant" or module.startswith("homeassistant.")
    }
    assert not offenders


def test_engine_never_imports_the_integration_package() -> None:
    """Relative imports may not climb out of engine/ into HA-facing modules."""
    offenders = []
    for path in ENGINE.rglob("*.py"):
        depth = len(path.relative_to(ENGINE).parts) - 1
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders.extend(
            f"{path.relative_to(ENGINE)} climbs {node.level} levels"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level > depth + 1
        )
        offenders.extend(
            f"{path.relative_to(ENGINE)} imports {node.module}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.startswith("custom_components.miloco")
            and not node.module.startswith("custom_components.miloco.engine")
        )
    assert not offenders
