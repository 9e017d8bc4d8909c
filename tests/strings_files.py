"""The integration's strings.json, and scripts/make_translations.py that resolves it into translations/en.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "custom_components" / "miloco"
STRINGS: dict[str, Any] = json.loads((PACKAGE / "strings.json").read_text(encoding="utf-8"))
ENGLISH: dict[str, Any] = json.loads((PACKAGE / "translations" / "en.json").read_text(encoding="utf-8"))


def make_translations() -> ModuleType:
    """Import scripts/make_translations.py, the script that writes en.json."""
    spec = importlib.util.spec_from_file_location(
        "make_translations", REPO / "scripts" / "make_translations.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
