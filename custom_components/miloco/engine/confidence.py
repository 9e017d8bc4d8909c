"""P(yes) for every yes/no answer of a reply, read from its tokens' log-probabilities (pure, no I/O).

The reply is reassembled from its tokens with each token's character offset. Each yes/no value of the reply's
JSON object (`person_present`, `rules.r1`, … of the combined check; `result` of a per-condition check) is
located in that text, and the token covering the value's first character is the model's decision: its top
alternatives say how likely each answer was. An alternative counts for "yes" when, past the part of the token
before the value (a glued quote or space) and any further quotes or spaces, its letters begin the word "yes"
(or "true" for a JSON boolean), case-insensitively; likewise for "no" ("false"). P(yes) is the yes mass over
the yes and no mass together. When no alternative speaks for the other answer, its mass is estimated from what
bounds it (see _unlisted_answer_mass).

Nothing here raises on odd input: an answer whose probability cannot be read is simply absent.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
import json
import math
import re
from typing import Final

from .backends.base import TokenLogprob
from .prompt import CheckSpec

# The per-condition reply's one field ({"result": "yes"}).
RESULT_PATH: Final = "result"
PRESENCE_PATH: Final = "person_present"
RULES_PATH: Final = "rules"

# The two answers' words, by the kind of value the model wrote.
_WORDS: Final[Mapping[str, tuple[str, str]]] = {
    "yes": ("yes", "no"),
    "no": ("yes", "no"),
    "true": ("true", "false"),
    "false": ("true", "false"),
}
_LEADING_FILLER: Final = " \t\r\n\"'"
_LETTERS: Final = re.compile(r"[A-Za-z]+")
_LITERAL: Final = re.compile(r"true|false|null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WHITESPACE: Final = re.compile(r"[ \t\r\n]*")
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
# Work bounds for adversarial token streams: the text read (a reply the backends accept is no longer), object
# starts tried, nesting followed.
_MAX_TEXT_CHARS: Final = 65536
_MAX_STARTS: Final = 64
_MAX_DEPTH: Final = 16
_THINK_END: Final = "</think>"


def yes_probabilities(tokens: Sequence[TokenLogprob] | None) -> dict[str, float]:
    """Return P(yes) in [0, 1] by JSON path ("person_present", "rules.r1", "result") for each readable answer."""
    if not tokens:
        return {}
    text, starts = _reassembled(tokens)
    probabilities: dict[str, float] = {}
    for path, (offset, word) in _yes_no_values(text).items():
        index = bisect_right(starts, offset) - 1
        if index < 0 or offset >= starts[index] + len(tokens[index].text):
            continue
        probability = _p_yes(tokens[index], text[starts[index] : offset], word)
        if probability is not None:
            probabilities[path] = probability
    return probabilities


def condition_probability(tokens: Sequence[TokenLogprob] | None) -> float | None:
    """Return P(yes) of a per-condition reply ({"result": "yes"}), or None when it cannot be read."""
    return yes_probabilities(tokens).get(RESULT_PATH)


def combined_probabilities(
    tokens: Sequence[TokenLogprob] | None, spec: CheckSpec
) -> tuple[float | None, dict[str, float]]:
    """Return P(person present) (None when not asked or unreadable) and P(yes) by rule id, of a combined reply."""
    probabilities = yes_probabilities(tokens)
    presence = probabilities.get(PRESENCE_PATH) if spec.presence else None
    rules = {
        rule.rule_id: probabilities[f"{RULES_PATH}.{alias}"]
        for alias, rule in spec.rule_aliases().items()
        if f"{RULES_PATH}.{alias}" in probabilities
    }
    return presence, rules


def _reassembled(tokens: Sequence[TokenLogprob]) -> tuple[str, list[int]]:
    """Return the reply text the tokens spell and each token's starting character offset."""
    starts: list[int] = []
    offset = 0
    for token in tokens:
        starts.append(offset)
        offset += len(token.text)
    return "".join(token.text for token in tokens), starts


def _p_yes(token: TokenLogprob, before_value: str, word: str) -> float | None:
    """Return P(yes) from the alternatives of the token where a value whose text is `word` begins."""
    yes_word, no_word = _WORDS[word]
    alternatives = dict(token.top)
    if token.text not in alternatives and math.isfinite(token.logprob):
        alternatives[token.text] = token.logprob
    mass = {yes_word: 0.0, no_word: 0.0}
    for text, logprob in alternatives.items():
        answer = _answer_of(text, before_value, (yes_word, no_word))
        if answer is not None and math.isfinite(logprob):
            mass[answer] += math.exp(min(logprob, 0.0))
    chosen, other = (yes_word, no_word) if word == yes_word else (no_word, yes_word)
    if mass[chosen] <= 0.0 and mass[other] <= 0.0:
        return None
    if mass[other] <= 0.0:
        mass[other] = _unlisted_answer_mass(min(mass[chosen], 1.0), alternatives.values())
    p_yes = mass[yes_word] / (mass[yes_word] + mass[no_word])
    return min(1.0, max(0.0, p_yes))


def _unlisted_answer_mass(chosen: float, listed: Iterable[float]) -> float:
    """Return the estimated mass of the answer the model did not choose and no alternative names.

    It is at most what the chosen answer leaves (1 − p), at most the least likely listed alternative (the
    alternatives are the most likely tokens, and it is not among them), and at most the chosen answer's own
    (the model chose at temperature 0). With nothing more known it is taken at half that bound, the middle of
    its range: so the chosen answer always keeps P > 0.5, even where the raw distribution puts most of its
    mass on tokens the reply's grammar forbids (a small or untrained model) and p itself is tiny.
    """
    bound = min(1.0 - chosen, chosen, *(math.exp(logprob) for logprob in listed if math.isfinite(logprob)))
    return max(0.0, bound) / 2


def _answer_of(alternative: str, before_value: str, words: tuple[str, str]) -> str | None:
    """Return which of the two words an alternative token begins, or None when it begins neither."""
    rest = alternative.removeprefix(before_value)
    letters = _LETTERS.match(rest.lstrip(_LEADING_FILLER))
    if letters is None:
        return None
    start = letters.group().lower()
    return next((word for word in words if word.startswith(start)), None)


def _yes_no_values(text: str) -> dict[str, tuple[int, str]]:
    """Return (offset of its first character, lower-cased word) by path for each yes/no value of the JSON."""
    text = text[:_MAX_TEXT_CHARS]
    body_start = text.rfind(_THINK_END)
    position = body_start + len(_THINK_END) if body_start >= 0 else 0
    for _ in range(_MAX_STARTS):
        position = text.find("{", position)
        if position < 0:
            return {}
        scanner = _Scanner(text)
        with suppress(_Stop):
            scanner.value(position, "", 0)
        if scanner.found:
            return scanner.found
        position += 1
    return {}


class _Stop(Exception):
    """The text stops being JSON here (truncated or malformed): keep what was found before."""


class _Scanner:
    """A forgiving JSON reader that notes where each yes/no value starts, by its dotted path."""

    def __init__(self, text: str) -> None:
        """Read `text`; nothing is found yet."""
        self._text = text
        self.found: dict[str, tuple[int, str]] = {}

    def value(self, position: int, path: str, depth: int) -> int:
        """Read the value at `position` (after whitespace); return the offset just past it."""
        position = self._skip_space(position)
        if position >= len(self._text) or depth > _MAX_DEPTH:
            raise _Stop
        char = self._text[position]
        if char == "{":
            return self._object(position + 1, path, depth + 1)
        if char == "[":
            return self._array(position + 1, path, depth + 1)
        if char == '"':
            end, decoded = self._string(position)
            self._note(path, position + 1, decoded)
            return end
        literal = _LITERAL.match(self._text, position)
        if literal is None:
            raise _Stop
        self._note(path, position, literal.group())
        return literal.end()

    def _object(self, position: int, path: str, depth: int) -> int:
        """Read an object's members after its opening brace; return the offset past the closing one."""
        position = self._skip_space(position)
        if self._at(position, "}"):
            return position + 1
        while True:
            position = self._skip_space(position)
            if not self._at(position, '"'):
                raise _Stop
            position, key = self._string(position)
            position = self._skip_space(position)
            if not self._at(position, ":"):
                raise _Stop
            position = self.value(position + 1, f"{path}.{key}" if path else key, depth)
            position = self._skip_space(position)
            if self._at(position, "}"):
                return position + 1
            if not self._at(position, ","):
                raise _Stop
            position += 1

    def _array(self, position: int, path: str, depth: int) -> int:
        """Read an array's items (their values are not yes/no answers we place); return the offset past it."""
        position = self._skip_space(position)
        if self._at(position, "]"):
            return position + 1
        index = 0
        while True:
            position = self._skip_space(self.value(position, f"{path}[{index}]", depth))
            if self._at(position, "]"):
                return position + 1
            if not self._at(position, ","):
                raise _Stop
            position += 1
            index += 1

    def _string(self, position: int) -> tuple[int, str]:
        """Return the offset past the string starting at `position` (a quote) and its decoded text."""
        match = _STRING.match(self._text, position)
        if match is None:
            raise _Stop
        try:
            decoded = json.loads(match.group(), strict=False)
        except ValueError:
            raise _Stop from None
        return match.end(), decoded if isinstance(decoded, str) else ""

    def _note(self, path: str, offset: int, raw: str) -> None:
        """Remember a yes/no value (in arrays too, though no answer of ours lives there)."""
        # The exact word only: the offset must be that of the answer's first letter.
        word = raw.lower()
        if path and word in _WORDS and path not in self.found:
            self.found[path] = (offset, word)

    def _skip_space(self, position: int) -> int:
        """Return the offset of the next non-whitespace character."""
        match = _WHITESPACE.match(self._text, position)
        return match.end() if match else position

    def _at(self, position: int, char: str) -> bool:
        """Return whether `char` is at `position`."""
        return position < len(self._text) and self._text[position] == char
