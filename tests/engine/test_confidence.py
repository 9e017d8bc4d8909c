"""P(yes) per answer from token log-probabilities (engine/confidence) and the logprobs block reader."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.miloco.engine.backends.base import TokenLogprob
from custom_components.miloco.engine.backends.logprobs import MAX_TOKENS, tokens_from_body, tokens_from_choice
from custom_components.miloco.engine.confidence import (
    combined_probabilities,
    condition_probability,
    yes_probabilities,
)
from custom_components.miloco.engine.prompt import CheckSpec, RuleSpec

LN = math.log


def tok(text: str, p: float = 1.0, **top: float) -> TokenLogprob:
    """Return a token with probability p and alternatives given as probabilities (keys spelled as text)."""
    return TokenLogprob(text, LN(p), {key: LN(value) for key, value in top.items()})


def alts(text: str, p: float, top: dict[str, float]) -> TokenLogprob:
    """Return a token whose alternatives' texts are not valid Python names (quotes, spaces)."""
    return TokenLogprob(text, LN(p), {key: LN(value) for key, value in top.items()})


# The combined answer of a check, tokenised three ways a tokenizer may cut the value:
#   person_present: the quote glued to the value (` "yes`), with a quote-only alternative (` "`);
#   rules.r1: the quote its own token, the value alone (`no`);
#   rules.r2: quote and value and closing quote in one token (`"yes"`).
COMBINED = [
    tok('{"'),
    tok("person"),
    tok("_present"),
    tok('":'),
    alts(' "yes', 0.6, {' "yes': 0.6, ' "no': 0.2, ' "': 0.1, ' "never': 0.05}),
    tok('",'),
    tok(' "rules": {"r1":'),
    tok(' "'),
    tok("no", 0.5, no=0.5, n=0.25, yes=0.125, Yes=0.0625),
    tok('",'),
    tok(' "r2": '),
    alts('"yes"', 0.3, {'"yes"': 0.3, '"no"': 0.1}),
    tok("}}"),
]


def test_combined_answer_by_path_hand_computed() -> None:
    probabilities = yes_probabilities(COMBINED)
    # person_present: yes 0.6 / (0.6 + no 0.2); the bare quote carries no answer, "never" is not "no".
    assert probabilities["person_present"] == pytest.approx(0.6 / 0.8)
    # r1: yes = 0.125 + 0.0625 (Yes, case-insensitive), no = 0.5 + 0.25 ("n" begins "no").
    assert probabilities["rules.r1"] == pytest.approx(0.1875 / (0.1875 + 0.75))
    # r2: 0.3 / (0.3 + 0.1).
    assert probabilities["rules.r2"] == pytest.approx(0.75)
    assert set(probabilities) == {"person_present", "rules.r1", "rules.r2"}


def test_combined_probabilities_by_rule_id() -> None:
    spec = CheckSpec(presence=True, rules=(RuleSpec("door", "the door is open"), RuleSpec("cat", "a cat")))
    presence, rules = combined_probabilities(COMBINED, spec)
    assert presence == pytest.approx(0.75)
    assert rules == {"door": pytest.approx(0.2), "cat": pytest.approx(0.75)}
    # Presence not asked: never reported, even when the reply carries it.
    presence, _ = combined_probabilities(COMBINED, CheckSpec(rules=spec.rules))
    assert presence is None


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        # Per-condition reply, both answers among the alternatives: 0.7 / (0.7 + 0.2).
        ([tok('{"result": "'), tok("yes", 0.7, yes=0.7, no=0.2), tok('"}')], 0.7 / 0.9),
        # Only the chosen token is known (p = 0.8): the other answer has at most min(1 - p, p) = 0.2, taken
        # at half that bound, 0.1: P(chosen) = 0.8 / (0.8 + 0.1).
        ([tok('{"result": "'), tok("yes", 0.8), tok('"}')], 0.8 / 0.9),
        ([tok('{"result": "'), tok("no", 0.8), tok('"}')], 0.1 / 0.9),
        # Empty alternatives are the same as none: 0.05 / (0.9 + 0.05).
        ([tok('{"result": "'), TokenLogprob("no", LN(0.9), {}), tok('"}')], 0.05 / 0.95),
        # A tiny p (most mass on tokens the grammar forbids): bound min(1 - p, p) = p, other p / 2, P = 2/3.
        ([tok('{"result": "'), tok("no", 1e-12), tok('"}')], 1 / 3),
        # Several alternatives for the chosen answer only: their mass together (0.8); the other answer is
        # below the least likely listed one (0.1), so it is taken at 0.05: 0.8 / 0.85.
        ([tok('{"result": "'), tok("yes", 0.5, yes=0.5, y=0.2, Y=0.1), tok('"}')], 0.8 / 0.85),
        # Non-answers listed (a quote, a brace) bound the other answer too: min(0.3, 0.7, 0.01) / 2.
        ([tok('{"result": "'), alts("yes", 0.7, {"yes": 0.7, '"': 0.29, "}": 0.01}), tok('"}')], 0.7 / 0.705),
        # A JSON boolean: true/false alternatives (yes/no would not be the same decision).
        ([tok('{"result": '), tok("true", 0.6, true=0.6, false=0.3, no=0.1), tok("}")], 0.6 / 0.9),
        # A chain of thought first: its braces are not the answer.
        (
            [tok("<think>{maybe}</think>"), tok('{"result": "'), tok("no", 0.6, no=0.6, yes=0.4), tok('"}')],
            0.4,
        ),
        # A fenced answer.
        ([tok('```json\n{"result":"'), tok("yes", 0.9, yes=0.9, no=0.05), tok('"}\n```')], 0.9 / 0.95),
    ],
)
def test_condition_probability_table(tokens: list[TokenLogprob], expected: float) -> None:
    assert condition_probability(tokens) == pytest.approx(expected)


@pytest.mark.parametrize(
    "tokens",
    [
        None,
        [],
        # Truncated before the value, inside the value, or with no closing quote.
        [tok('{"result": ')],
        [tok('{"result": "'), tok("ye", 0.9, ye=0.9, no=0.1)],
        # Not yes or no.
        [tok('{"result": "'), tok("maybe", 0.9, maybe=0.9, yes=0.05), tok('"}')],
        # No JSON at all.
        [tok("yes", 0.9, yes=0.9, no=0.1)],
        # The chosen token's probability and every alternative unreadable (NaN, ±inf).
        [tok('{"result": "'), TokenLogprob("yes", math.nan, {"yes": math.inf, "no": math.nan}), tok('"}')],
        # Another key than the one asked.
        [tok('{"answer": "'), tok("yes", 0.9), tok('"}')],
    ],
)
def test_unreadable_answers_are_absent(tokens: list[TokenLogprob] | None) -> None:
    assert condition_probability(tokens) is None


def test_nan_own_logprob_falls_back_to_alternatives() -> None:
    tokens = [tok('{"result": "'), TokenLogprob("yes", math.nan, {"yes": LN(0.6), "no": LN(0.3)}), tok('"}')]
    assert condition_probability(tokens) == pytest.approx(0.6 / 0.9)


def test_every_truncation_keeps_complete_answers_and_never_raises() -> None:
    full = yes_probabilities(COMBINED)
    for end in range(len(COMBINED) + 1):
        partial = yes_probabilities(COMBINED[:end])
        # What a cut stream still shows in full is read exactly as from the whole stream.
        assert all(partial[path] == full[path] for path in partial)
    assert yes_probabilities(COMBINED[:6]) == {"person_present": full["person_present"]}


# --- the logprobs block of a chat completion ----------------------------------------------------------


def block(*entries: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"content": "x"}, "logprobs": {"content": list(entries)}}]}


def test_block_reads_tokens_and_alternatives() -> None:
    body = block(
        {
            "token": "yes",
            "logprob": -0.1,
            "top_logprobs": [{"token": "yes", "logprob": -0.1}, {"token": "no", "logprob": -2.5}],
        }
    )
    (token,) = tokens_from_body(body) or ()
    assert token == TokenLogprob("yes", -0.1, {"yes": -0.1, "no": -2.5})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"choices": []},
        {"choices": [{"logprobs": None}]},
        {"choices": [{"logprobs": {"content": None}}]},
        {"choices": [{"logprobs": {"content": []}}]},
        {"choices": [{"logprobs": {"content": "yes"}}]},
        block({"logprob": -0.1}),
        block({"token": 3, "logprob": -0.1}),
        block({"token": "yes", "logprob": -0.1}, "garbage"),
        block({"token": "x" * 10_000, "logprob": -0.1}),
        [],
    ],
)
def test_malformed_blocks_give_none(body: Any) -> None:
    assert tokens_from_body(body) is None


def test_non_finite_numbers_are_dropped() -> None:
    body = json.loads(
        '{"choices": [{"logprobs": {"content": [{"token": "yes", "logprob": NaN, "top_logprobs": ['
        '{"token": "yes", "logprob": -0.2}, {"token": "no", "logprob": -Infinity}, {"token": "n", "logprob": Infinity},'
        '{"token": "y", "logprob": true}, {"token": "Y", "logprob": 0.001}]}]}}]}'
    )
    (token,) = tokens_from_body(body) or ()
    # The own logprob (NaN) is taken from the alternative of the same text; a rounding above 0 is clamped.
    assert token == TokenLogprob("yes", -0.2, {"yes": -0.2, "Y": 0.0})


def test_long_streams_are_cut() -> None:
    entries = [{"token": "a", "logprob": -0.1, "top_logprobs": []}] * (MAX_TOKENS + 5)
    tokens = tokens_from_choice(block(*entries)["choices"][0])
    assert tokens is not None
    assert len(tokens) == MAX_TOKENS


# --- property: any stream, no exception, probabilities within [0, 1] --------------------------------------

_PIECES = st.sampled_from(
    [
        '{"',
        "{",
        "}",
        '"',
        ' "',
        '":',
        ": ",
        ",",
        "result",
        "rules",
        "r1",
        "person_present",
        "yes",
        "no",
        "Yes",
        '"yes',
        ' "no"',
        "true",
        "false",
        "n",
        "y",
        "[",
        "]",
        "\\",
        '\\"',
        "<think>",
        "</think>",
        " ",
        "x",
    ]
)
_LOGPROBS = st.one_of(
    st.floats(max_value=0.0, allow_nan=False), st.just(math.nan), st.just(math.inf), st.just(-math.inf)
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.builds(
            TokenLogprob,
            st.one_of(_PIECES, st.text(max_size=4)),
            _LOGPROBS,
            st.dictionaries(st.one_of(_PIECES, st.text(max_size=4)), _LOGPROBS, max_size=5),
        ),
        max_size=30,
    )
)
def test_any_stream_gives_probabilities_in_range(tokens: list[TokenLogprob]) -> None:
    probabilities = yes_probabilities(tokens)
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.01, max_value=0.99), st.floats(min_value=0.0, max_value=0.99))
def test_scripted_answer_round_trips(p_yes: float, lost: float) -> None:
    # Mass on tokens that are no answer (here a quote) must not change the normalised probability.
    rest = 1.0 - lost
    chosen = "yes" if p_yes >= 0.5 else "no"
    top = (
        {"yes": p_yes * rest, "no": (1.0 - p_yes) * rest, '"': lost}
        if lost
        else {"yes": p_yes, "no": 1 - p_yes}
    )
    tokens = [
        tok('{"result": "'),
        alts(chosen, top[chosen], {k: v for k, v in top.items() if v > 0}),
        tok('"}'),
    ]
    assert condition_probability(tokens) == pytest.approx(p_yes, abs=1e-9)


def test_only_the_first_64k_characters_are_read() -> None:
    # A reply the backends accept is at most 65,536 characters; a stream spelling more is read that far only.
    def stream(padding: int) -> list[TokenLogprob]:
        pad = [tok("x" * 200)] * (padding // 200)
        return [tok('{"pad": "'), *pad, tok('", "result": "'), tok("yes", 0.9, yes=0.9, no=0.1), tok('"}')]

    assert condition_probability(stream(60_000)) == pytest.approx(0.9)
    assert condition_probability(stream(70_000)) is None
