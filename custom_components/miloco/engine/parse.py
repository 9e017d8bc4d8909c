"""Turn a vision model's reply text into a schema-checked Python object."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
import json
import math
import re
from typing import Any, Final

# The backends already cap reply bytes; this bound keeps the parser's own work small even if one does not.
MAX_REPLY_CHARS: Final = 65536

# A plain dict (typed read-only) so that schemas built from it stay JSON-serialisable for the servers.
YES_NO: Final[Mapping[str, Any]] = {"type": "string", "enum": ["yes", "no"]}

# Words that mean yes or no for a yes/no enum or a boolean, compared after _normalize().
_YES_WORDS: Final = frozenset({"yes", "y", "true", "是", "是的"})
_NO_WORDS: Final = frozenset({"no", "n", "false", "否", "不是"})

# A standalone yes/no for the bare-answer fallback. The Chinese forms must not touch another ideograph:
# 是 is also the copula ("图中是一个人"), and 是否 means "whether".
_CJK: Final = "\u3400-\u9fff\uf900-\ufaff"
_BARE_ANSWER: Final = re.compile(rf"(?i:\b(?:yes|no)\b)|(?<![{_CJK}])(?:是的|不是|是|否)(?![{_CJK}])")

# Characters that matter to brace matching; everything else is skipped by the regex engine in C.
_BRACE_TOKENS: Final = re.compile(r'[{}"\\]')

_THINK_END: Final = "</think>"
_BOXED: Final = "\\boxed{"
_FENCE: Final = "```"

# Work bounds for adversarial replies: decode attempts per reply, and the deepest object nesting worth a
# decode (our schemas nest three levels; deeper spans are still searched for objects inside them).
_MAX_DECODE_ATTEMPTS: Final = 4096
_MAX_NESTING: Final = 32
_PREVIEW_CHARS: Final = 60

# Literal control characters inside strings (a newline in a "reason") are a common model slip; accept them.
_DECODER: Final = json.JSONDecoder(strict=False)

_ANNOTATIONS: Final = frozenset({"description", "title"})
_KEYWORDS: Final[Mapping[str, frozenset[str]]] = {
    "object": frozenset({"type", "properties", "required", "additionalProperties"}),
    "string": frozenset({"type", "enum", "maxLength"}),
    "boolean": frozenset({"type"}),
    "integer": frozenset({"type", "minimum", "maximum"}),
    "number": frozenset({"type", "minimum", "maximum"}),
    "array": frozenset({"type", "items", "maxItems"}),
}


class ReplyParseError(ValueError):
    """The reply holds no answer that matches the expected schema."""


class _Mismatch(Exception):
    """A value does not fit its schema (internal; never leaves this module)."""


def yes_no_schema(field: str = "result") -> dict[str, Any]:
    """Return the schema of a one-field yes/no reply, Miloco's `{"result": "yes"}` format."""
    fragment = {"type": YES_NO["type"], "enum": list(YES_NO["enum"])}
    return {"type": "object", "properties": {field: fragment}, "required": [field]}


def is_yes(value: object) -> bool:
    """Return True when a (coerced) answer means yes."""
    return _yes_no_answer(value) is True


def check_reply_schema(schema: object) -> None:
    """Raise ValueError unless the schema is an object schema within the supported subset."""
    _check_schema(schema)
    if not isinstance(schema, Mapping) or schema["type"] != "object":
        raise ValueError("a reply schema must have type 'object'")


def parse_reply(text: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new dict holding the schema's properties, coerced, from the reply's final valid answer.

    Raises ReplyParseError when no answer in the reply validates; a schema outside the supported subset is a
    programming error and raises a plain ValueError instead.
    """
    check_reply_schema(schema)
    if not isinstance(text, str):
        # A backend should hand over text; a malformed reply it let through is still only a bad reply.
        raise ReplyParseError(f"reply is {type(text).__name__}, not text")
    if len(text) > MAX_REPLY_CHARS:
        raise ReplyParseError(f"reply too long ({len(text)} characters, limit {MAX_REPLY_CHARS})")
    answer = _after_thinking(text)
    for candidate in _candidates(answer):
        with suppress(_Mismatch):
            return _coerce_object(candidate, schema)
    bare = _bare_answer(answer, schema)
    if bare is not None:
        return bare
    raise ReplyParseError(f"no answer matching the schema in reply {_preview(answer)!r}")


# --- extraction ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Span:
    """A balanced {...} pair: text[start:end], how many brace levels it holds, and its direct children."""

    start: int
    end: int = -1
    height: int = 0
    children: list[_Span] = field(default_factory=list)


def _after_thinking(text: str) -> str:
    """Return the text after the last </think>, or all of it when thinking never closed (or never began)."""
    end = text.rfind(_THINK_END)
    return text if end < 0 else text[end + len(_THINK_END) :]


def _candidates(answer: str) -> list[dict[str, Any]]:
    """Return the JSON objects in the answer in try order: boxed/fenced ones first, each group last first."""
    roots, ends = _brace_tree(answer)
    regions = _merge(_boxed_regions(answer, ends) + _fenced_regions(answer))
    starts = [start for start, _ in regions]
    preferred: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for start, value in _decoded_objects(answer, roots):
        slot = bisect_right(starts, start) - 1
        inside = slot >= 0 and start < regions[slot][1]
        (preferred if inside else others).append(value)
    return preferred + others


def _brace_tree(text: str) -> tuple[list[_Span], dict[int, int]]:
    """Match braces in one pass (JSON strings respected inside braces); return root spans and start→end."""
    roots: list[_Span] = []
    ends: dict[int, int] = {}
    stack: list[_Span] = []
    in_string = False
    skip_to = 0
    for match in _BRACE_TOKENS.finditer(text):
        index = match.start()
        if index < skip_to:
            continue
        char = text[index]
        if in_string:
            if char == "\\":
                skip_to = index + 2
            elif char == '"':
                in_string = False
        elif char == '"':
            # Quotes in the prose around the JSON (depth 0) do not open strings.
            in_string = bool(stack)
        elif char == "{":
            stack.append(_Span(index))
        elif char == "}" and stack:
            _close(stack, roots, ends, index)
    return roots, ends


def _close(stack: list[_Span], roots: list[_Span], ends: dict[int, int], index: int) -> None:
    """Close the innermost open span at index and hang it under its parent (or the roots)."""
    span = stack.pop()
    span.end = index + 1
    ends[span.start] = span.end
    if stack:
        parent = stack[-1]
        parent.children.append(span)
        parent.height = max(parent.height, span.height + 1)
    else:
        roots.append(span)


def _decoded_objects(text: str, roots: list[_Span]) -> list[tuple[int, dict[str, Any]]]:
    """Return (start, object) for the outermost decodable spans, last first, within the work bounds."""
    # Popping the last root and pushing children in text order visits spans by descending start, so the
    # attempt budget runs out on the reply's preamble rather than on its final answer.
    found: list[tuple[int, dict[str, Any]]] = []
    attempts = _MAX_DECODE_ATTEMPTS
    # An explicit stack: brace nesting in a reply can be far deeper than Python's recursion limit.
    pending = list(roots)
    while pending and attempts > 0:
        span = pending.pop()
        if span.height <= _MAX_NESTING:
            attempts -= 1
            value = _decode(text[span.start : span.end])
            if value is not None:
                found.append((span.start, value))
                continue
        pending.extend(span.children)
    return found


def _decode(chunk: str) -> dict[str, Any] | None:
    """Return the JSON object a balanced chunk holds, or None."""
    try:
        value = _DECODER.decode(chunk)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _boxed_regions(text: str, ends: dict[int, int]) -> list[tuple[int, int]]:
    r"""Return the spans of \boxed{...} arguments; an unclosed one runs to the end of the text."""
    regions: list[tuple[int, int]] = []
    found = text.find(_BOXED)
    while found >= 0:
        brace = found + len(_BOXED) - 1
        end = ends.get(brace, len(text))
        regions.append((brace, end))
        found = text.find(_BOXED, end)
    return regions


def _fenced_regions(text: str) -> list[tuple[int, int]]:
    """Return the insides of markdown code fences; an unclosed fence runs to the end of the text."""
    regions: list[tuple[int, int]] = []
    opening = text.find(_FENCE)
    while opening >= 0:
        start = opening + len(_FENCE)
        closing = text.find(_FENCE, start)
        if closing < 0:
            regions.append((start, len(text)))
            break
        regions.append((start, closing))
        opening = text.find(_FENCE, closing + len(_FENCE))
    return regions


def _merge(regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Return the regions sorted and merged into disjoint intervals."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(regions):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _bare_answer(answer: str, schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return {field: yes/no} from a bare yes/no word when the schema asks for one yes/no and nothing else."""
    name = _single_yes_no_field(schema)
    if name is None:
        return None
    answers = {_yes_no_answer(match.group(0)) for match in _BARE_ANSWER.finditer(answer)}
    if len(answers) > 1:
        raise ReplyParseError(f"ambiguous bare answer (both yes and no) in reply {_preview(answer)!r}")
    if not answers:
        return None
    (yes,) = answers
    return {name: _canonical(schema["properties"][name]["enum"], yes=yes is True)}


def _single_yes_no_field(schema: Mapping[str, Any]) -> str | None:
    """Return the schema's only required property when it is a yes/no enum."""
    required = list(schema.get("required", ()))
    if len(required) != 1:
        return None
    prop = schema.get("properties", {})[required[0]]
    is_yes_no = prop["type"] == "string" and _is_yes_no_enum(prop.get("enum"))
    return str(required[0]) if is_yes_no else None


def _preview(text: str) -> str:
    """Return a short, single-line start of the text for error messages."""
    flat = " ".join(text[: _PREVIEW_CHARS * 4].split())
    return flat if len(flat) <= _PREVIEW_CHARS else f"{flat[:_PREVIEW_CHARS]}…"


# --- coercion -----------------------------------------------------------------------------------------


def _coerce(value: object, schema: Mapping[str, Any]) -> object:
    """Return the value coerced to a checked schema, or raise _Mismatch."""
    return _COERCERS[schema["type"]](value, schema)


def _coerce_object(value: object, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the known properties that coerce; unknown keys are dropped and a bad optional one is omitted."""
    if not isinstance(value, dict):
        raise _Mismatch
    out: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        if name in value:
            with suppress(_Mismatch):
                out[name] = _coerce(value[name], prop)
    if any(name not in out for name in schema.get("required", ())):
        raise _Mismatch
    return out


def _coerce_array(value: object, schema: Mapping[str, Any]) -> list[Any]:
    """Keep the items that coerce (enum items once each), truncated to maxItems."""
    if not isinstance(value, list):
        raise _Mismatch
    items = schema["items"]
    out = list(_coerced_items(value, items))
    if "enum" in items:
        out = list(dict.fromkeys(out))
    max_items = schema.get("maxItems")
    return out if max_items is None else out[:max_items]


def _coerced_items(values: list[Any], schema: Mapping[str, Any]) -> Iterator[object]:
    """Yield each value that coerces to the schema, skipping the rest."""
    for value in values:
        with suppress(_Mismatch):
            yield _coerce(value, schema)


def _coerce_string(value: object, schema: Mapping[str, Any]) -> str:
    """Return an enum's canonical spelling, or the string truncated to maxLength."""
    enum = schema.get("enum")
    if enum is not None:
        return _coerce_enum(value, enum)
    if not isinstance(value, str):
        raise _Mismatch
    max_length = schema.get("maxLength")
    return value if max_length is None else value[:max_length]


def _coerce_enum(value: object, enum: Sequence[str]) -> str:
    """Match an enum loosely (case, whitespace, a trailing period); yes/no enums take synonyms too."""
    if _is_yes_no_enum(enum):
        answer = _yes_no_answer(value)
        if answer is None:
            raise _Mismatch
        return _canonical(enum, yes=answer)
    if isinstance(value, str):
        wanted = _normalize(value)
        for option in enum:
            if _normalize(option) == wanted:
                return option
    raise _Mismatch


def _coerce_boolean(value: object, _schema: Mapping[str, Any]) -> bool:
    """Return a boolean from a JSON boolean or a yes/no/true/false word."""
    answer = _yes_no_answer(value)
    if answer is None:
        raise _Mismatch
    return answer


def _coerce_integer(value: object, schema: Mapping[str, Any]) -> int:
    """Return an in-range integer (3.0 counts, as in JSON Schema)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Mismatch
    _check_range(value, schema)
    return value


def _coerce_number(value: object, schema: Mapping[str, Any]) -> float | int:
    """Return an in-range finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Mismatch
    # The decoder accepts NaN and Infinity; no schema of ours means them.
    if isinstance(value, float) and not math.isfinite(value):
        raise _Mismatch
    _check_range(value, schema)
    return value


def _check_range(value: float, schema: Mapping[str, Any]) -> None:
    """Raise _Mismatch when the value lies outside minimum/maximum."""
    minimum = schema.get("minimum")
    maximum = schema.get("maximum")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _Mismatch


_COERCERS: Final[Mapping[str, Callable[[object, Mapping[str, Any]], object]]] = {
    "object": _coerce_object,
    "array": _coerce_array,
    "string": _coerce_string,
    "boolean": _coerce_boolean,
    "integer": _coerce_integer,
    "number": _coerce_number,
}


def _yes_no_answer(value: object) -> bool | None:
    """Return True/False for a yes/no synonym (JSON booleans included), None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = _normalize(value)
        if word in _YES_WORDS:
            return True
        if word in _NO_WORDS:
            return False
    return None


def _normalize(text: str) -> str:
    """Fold case and drop surrounding whitespace and trailing periods ("Yes." → "yes")."""
    return text.strip().rstrip(".。").strip().casefold()


def _is_yes_no_enum(enum: object) -> bool:
    """Return True for an enum of exactly yes and no (any order, any case)."""
    if not isinstance(enum, list | tuple) or len(enum) != 2:
        return False
    return all(isinstance(option, str) for option in enum) and {o.casefold() for o in enum} == {"yes", "no"}


def _canonical(enum: Sequence[str], *, yes: bool) -> str:
    """Return the enum's own spelling of yes or no."""
    wanted = "yes" if yes else "no"
    return next(option for option in enum if option.casefold() == wanted)


# --- schema checking ------------------------------------------------------------------------------------
# We write every schema ourselves, so a fault here is a bug in the caller: it raises a plain ValueError
# (type faults included, so that there is one thing to look for), never ReplyParseError.


def _check_schema(schema: object, where: str = "schema") -> None:
    """Raise ValueError unless the schema stays within the supported subset."""
    if not isinstance(schema, Mapping):
        raise ValueError(f"{where} is not a mapping")  # noqa: TRY004 - every schema fault is one ValueError
    kind = schema.get("type")
    allowed = _KEYWORDS.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        raise ValueError(f"{where}: unsupported type {kind!r}")
    unknown = set(schema) - allowed - _ANNOTATIONS
    if unknown:
        raise ValueError(f"{where}: unsupported keywords {sorted(map(str, unknown))}")
    if kind == "object":
        _check_object(schema, where)
    elif kind == "array":
        _check_schema(schema.get("items"), f"{where}.items")
        _check_count(schema, "maxItems", where)
    elif kind == "string":
        _check_enum(schema, where)
        _check_count(schema, "maxLength", where)
    elif kind in {"integer", "number"}:
        _check_bounds(schema, where)


def _check_object(schema: Mapping[str, Any], where: str) -> None:
    """Raise ValueError for malformed properties or a required name without a property."""
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ValueError(f"{where}.properties is not a mapping")  # noqa: TRY004 - as above
    for name, prop in properties.items():
        if not isinstance(name, str):
            raise ValueError(f"{where}: property name {name!r} is not a string")  # noqa: TRY004 - as above
        _check_schema(prop, f"{where}.{name}")
    required = schema.get("required", [])
    if not isinstance(required, list | tuple) or any(name not in properties for name in required):
        raise ValueError(f"{where}.required must list names of defined properties")


def _check_enum(schema: Mapping[str, Any], where: str) -> None:
    """Raise ValueError unless a string enum is a non-empty list of strings."""
    enum = schema.get("enum")
    if enum is None:
        return
    if not isinstance(enum, list | tuple) or not enum or not all(isinstance(o, str) for o in enum):
        raise ValueError(f"{where}.enum must be a non-empty list of strings")


def _check_count(schema: Mapping[str, Any], keyword: str, where: str) -> None:
    """Raise ValueError unless the keyword, when present, is a non-negative integer."""
    count = schema.get(keyword)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ValueError(f"{where}.{keyword} must be a non-negative integer")


def _check_bounds(schema: Mapping[str, Any], where: str) -> None:
    """Raise ValueError unless minimum/maximum, when present, are finite numbers."""
    for keyword in ("minimum", "maximum"):
        bound = schema.get(keyword)
        if bound is None:
            continue
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
            raise ValueError(f"{where}.{keyword} must be a finite number")
