"""The answer a person's question gets: its schema, the one reply cap, and the schema subset the parser reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .parse import check_reply_schema

# The longest free answer (the analyze service, AI Task), and the longest question or instructions asked.
MAX_ANSWER_CHARS: Final = 2000
MAX_QUESTION_CHARS: Final = MAX_ANSWER_CHARS

# Without a structure of its own, a question is answered in one JSON field, which the checks' parser reads.
ANSWER_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": MAX_ANSWER_CHARS}},
    "required": ["answer"],
}

# The keywords the parser reads for each scalar type; others are dropped from a requested structure.
_SCALAR_KEYWORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "string": ("enum", "maxLength"),
    "integer": ("minimum", "maximum"),
    "number": ("minimum", "maximum"),
    "boolean": (),
}


def readable_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return an answer structure cut down to what the parser reads; raise ValueError when it cannot read it."""
    subset = _subset(schema)
    check_reply_schema(subset)
    return subset


def _subset(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return the schema with the keywords the parser does not read dropped; ValueError for a type it cannot."""
    kind = schema.get("type")
    out: dict[str, Any] = {"type": kind}
    if isinstance(schema.get("description"), str):
        out["description"] = schema["description"]
    if kind == "object":
        properties = {name: _subset(prop) for name, prop in schema.get("properties", {}).items()}
        out["properties"] = properties
        out["required"] = [name for name in schema.get("required", []) if name in properties]
    elif kind == "array":
        out["items"] = _subset(schema.get("items", {"type": "string"}))
        if "maxItems" in schema:
            out["maxItems"] = schema["maxItems"]
    elif isinstance(kind, str) and kind in _SCALAR_KEYWORDS:
        out.update({key: schema[key] for key in _SCALAR_KEYWORDS[kind] if key in schema})
    else:
        raise ValueError(f"unsupported answer type {kind!r}")
    return out
