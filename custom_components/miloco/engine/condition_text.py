"""Checks on a rule's natural-language condition before it is ever sent to the model."""

from __future__ import annotations

import re
from typing import Final

MAX_CONDITION_CHARS: Final = 300

# Conditions phrased as past events ("detected someone waving", "a person has entered") make the model answer
# yes for as long as the memory of the event could apply; the model judges states in the frames it sees.
_PAST_EVENT: Final = re.compile(
    r"\b(?:detected|detect(?:s|ing)?\s+(?:that|if|whether|someone|somebody|a|an|the)|has\s+been|have\s+been"
    r"|had\s+been|(?:has|have|had)\s+(?:just\s+)?\w+ed|was\s+\w+ed|were\s+\w+ed|happened|occurred"
    r"|(?:entered|arrived|left|appeared|came\s+in|walked\s+in|fell\s+down)\b)"
    r"|检测到|发现了|出现了|已经",
    re.IGNORECASE,
)


def condition_problem(text: str) -> str | None:
    """Return why a condition cannot be used ('empty', 'too_long', 'past_event'), or None when it is fine."""
    cleaned = " ".join(text.split())
    if not cleaned.strip(" ."):
        return "empty"
    if len(cleaned) > MAX_CONDITION_CHARS:
        return "too_long"
    if _PAST_EVENT.search(cleaned):
        return "past_event"
    return None
