"""Read the token log-probabilities of a chat completion (OpenAI's `choices[0].logprobs` block)."""

from __future__ import annotations

from collections.abc import Mapping
import math
from numbers import Real
from typing import Any, Final

from .base import TokenLogprob

# A check's reply is a few dozen tokens; a longer list is cut, never an error.
MAX_TOKENS: Final = 2048
MAX_TOP: Final = 20
MAX_TOKEN_CHARS: Final = 256
# The most alternatives a request asks for (OpenAI's own limit is 20).
MAX_TOP_LOGPROBS: Final = 20


def top_logprobs_wanted(asked: int | None) -> int | None:
    """Return the alternatives to ask for, within what servers accept; None when none were asked."""
    if asked is None:
        return None
    return max(0, min(asked, MAX_TOP_LOGPROBS))


def tokens_from_body(body: Any) -> tuple[TokenLogprob, ...] | None:
    """Return the token log-probabilities of a chat completion's first choice; None when it has none readable."""
    choices = body.get("choices") if isinstance(body, Mapping) else None
    return tokens_from_choice(choices[0]) if isinstance(choices, list) and choices else None


def tokens_from_choice(choice: Any) -> tuple[TokenLogprob, ...] | None:
    """Return the tokens of a choice's logprobs block; None when it is absent or not the documented shape."""
    block = choice.get("logprobs") if isinstance(choice, Mapping) else None
    content = block.get("content") if isinstance(block, Mapping) else None
    if not isinstance(content, list) or not content:
        return None
    tokens: list[TokenLogprob] = []
    for item in content[:MAX_TOKENS]:
        token = _token(item)
        if token is None:
            # One unreadable entry shifts every later offset: the rest cannot be placed in the text.
            return None
        tokens.append(token)
    return tuple(tokens)


def _token(item: Any) -> TokenLogprob | None:
    """Return one entry of `content` as a TokenLogprob, or None when it is not the documented shape."""
    if not isinstance(item, Mapping):
        return None
    text, raw_logprob = item.get("token"), item.get("logprob")
    if not isinstance(text, str) or len(text) > MAX_TOKEN_CHARS or not _is_number(raw_logprob):
        return None
    top: dict[str, float] = {}
    alternatives = item.get("top_logprobs")
    if isinstance(alternatives, list):
        for alternative in alternatives[:MAX_TOP]:
            if not isinstance(alternative, Mapping):
                continue
            alt_text, alt_logprob = alternative.get("token"), _finite_logprob(alternative.get("logprob"))
            if isinstance(alt_text, str) and len(alt_text) <= MAX_TOKEN_CHARS and alt_logprob is not None:
                # The same text twice (two token ids that print alike) is one alternative: add their mass.
                top[alt_text] = _log_add(top[alt_text], alt_logprob) if alt_text in top else alt_logprob
    logprob = _finite_logprob(raw_logprob)
    if logprob is None:
        # A non-finite probability (NaN, ±inf) is dropped, but its token keeps its place in the text; NaN
        # marks it unknown (an alternative of the same text may still say how likely it was).
        logprob = top.get(text, math.nan)
    return TokenLogprob(text, logprob, top)


def _is_number(value: Any) -> bool:
    """Return whether a JSON value is a number (finite or not), not a boolean."""
    # Real, not float: llama-cpp-python hands numpy float32 values, which are no float subclass.
    return isinstance(value, Real) and not isinstance(value, bool)


def _finite_logprob(value: Any) -> float | None:
    """Return a log-probability (a finite number ≤ 0, a rounding above 0 clamped); None for anything else."""
    if not _is_number(value):
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return min(number, 0.0)


def _log_add(a: float, b: float) -> float:
    """Return log(exp(a) + exp(b)) without overflow, at most 0."""
    high, low = max(a, b), min(a, b)
    return min(0.0, high + math.log1p(math.exp(low - high)))
