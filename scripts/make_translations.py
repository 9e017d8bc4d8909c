"""Write translations/en.json: strings.json with its [%key:…%] references resolved, as hassfest does for core.

Home Assistant serves a custom integration's translation files as they are, so a reference left in en.json
would reach the UI as raw text. After changing strings.json run `python3 scripts/make_translations.py`;
`--check` only reports whether en.json is up to date (tests/test_translations.py checks the same).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import re
import sys
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "custom_components" / "miloco"
STRINGS = PACKAGE / "strings.json"
ENGLISH = PACKAGE / "translations" / "en.json"
# Only the integration's own texts can be referred to: core's common strings are not shipped with it.
OWN_PREFIX = "component::miloco::"
REFERENCE = re.compile(r"\[%key:([A-Za-z0-9_:]+)%\]")


class ReferenceError_(ValueError):
    """A reference names no text of strings.json, names a section, or refers back to itself."""


def resolved(strings: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of the strings with every reference replaced by the text it names (references may nest)."""

    def text_at(path: str, seen: tuple[str, ...]) -> str:
        if not path.startswith(OWN_PREFIX):
            raise ReferenceError_(f"{path}: only {OWN_PREFIX}… references can be resolved")
        if path in seen:
            raise ReferenceError_(f"{path}: refers back to itself through {' → '.join(seen)}")
        node: Any = strings
        for part in path.removeprefix(OWN_PREFIX).split("::"):
            if not isinstance(node, dict) or part not in node:
                raise ReferenceError_(f"{path}: no such text")
            node = node[part]
        if not isinstance(node, str):
            raise ReferenceError_(f"{path}: names a group of texts, not a text")
        return substitute(node, (*seen, path))

    def substitute(text: str, seen: tuple[str, ...]) -> str:
        return REFERENCE.sub(lambda match: text_at(match.group(1), seen), text)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, str):
            return substitute(node, ())
        return node

    result: dict[str, Any] = walk(strings)
    return result


def english_text() -> str:
    """Return en.json's text as this script writes it."""
    strings = json.loads(STRINGS.read_text(encoding="utf-8"))
    return json.dumps(resolved(strings), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write en.json, or with --check report whether it matches strings.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that en.json is up to date")
    args = parser.parse_args()
    wanted = english_text()
    if args.check:
        current = json.loads(ENGLISH.read_text(encoding="utf-8"))
        if current != json.loads(wanted):
            print(f"{ENGLISH.relative_to(REPO)} is out of date: run scripts/make_translations.py")
            return 1
        return 0
    ENGLISH.write_text(wanted, encoding="utf-8")
    print(f"wrote {ENGLISH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
