"""Answer length and the cost of log-probabilities, per check, on llama.cpp's C++ llama-server (tiny model).

For a typical camera (6 gestures, 5 activities, presence, 5 rules) and each prompt mode (combined with the
full answer, combined with the compact answer, one request per condition), the same check is sent N times on
the same frames, with and without `logprobs` (`top_logprobs` 5, the integration's), the variants interleaved
so that the machine's load drifts over all of them alike. Per check: the completion tokens (the server's
`usage`), the reply bytes (the JSON body) and the wall time; median and p90.

Besides, from the schemas alone: the fewest completion tokens each format can answer in (no whitespace, no
reason), counted by the tiny model's own tokenizer through the server's /tokenize.

The tiny model has random weights: what it writes within a schema (which keys, how long a reason) is
arbitrary, so its measured token counts and times say what the format and the server cost, not what a
trained model would choose. The fixed structure of a format (its keys, quotes, brackets) is real.

Where it runs: as benchmarks/llama_server_bench.py: on the host when `llama-server` is on PATH (inside the
newest suite's root filesystem it is); otherwise through `rootfs_exec` when MILOCO_LLAMA_CPP_ROOTFS=1
(`scripts/bench --answer-cost` sets it). `python -m benchmarks.answer_cost --out benchmarks` writes
answer_cost.md and answer_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import replace
import json
import math
from pathlib import Path
import statistics
import tempfile
import time
from typing import Any, Final

import aiohttp

from benchmarks.llama_server_bench import BINARY, ROOTFS_VARIABLE, CppServer, where
from benchmarks.scenes import build_scenes
from custom_components.miloco.engine.backends.base import VisionRequest
from custom_components.miloco.engine.backends.openai_compat import (
    FORMAT_JSON_SCHEMA,
    OpenAICompatBackend,
    _ask_logprobs,
    _encode_payload,
)
from custom_components.miloco.engine.check import CHECK_TOP_LOGPROBS
from custom_components.miloco.engine.frames import DETAIL_BUDGETS, prepare_window
from custom_components.miloco.engine.labels import ACTIVITIES, GESTURES
from custom_components.miloco.engine.prompt import (
    ANSWER_COMPACT,
    ANSWER_FULL,
    HOLDS_FIELD,
    CheckSpec,
    RuleSpec,
    build_combined_request,
    build_condition_requests,
    compact_keys,
)
from testkit.llama_server import ALIAS, FIXTURES, MMPROJ, MODEL

COMBINED_FULL: Final = "combined, full answer"
COMBINED_COMPACT: Final = "combined, compact answer"
PER_CONDITION: Final = "per condition"
MODES: Final = (COMBINED_FULL, COMBINED_COMPACT, PER_CONDITION)
# What the integration asks for in each mode: a compact answer has no yes/no token to read P(yes) from.
INTEGRATION_LOGPROBS: Final = {COMBINED_FULL: True, COMBINED_COMPACT: False, PER_CONDITION: True}
DEFAULT_CHECKS: Final = 10
RULES: Final = (
    "someone is lying on the floor",
    "the front door is open",
    "a dog is on the sofa",
    "someone is cooking at the stove",
    "a package lies at the door",
)
# A scene to count a typical answer for: one gesture, one activity, a person and one rule hold.
TYPICAL_SCENE: Final = ("wave", "reading", "person", "r2")


def typical_spec(answer_format: str = ANSWER_FULL) -> CheckSpec:
    """Return the typical camera: every gesture (6) and activity (5), presence, and 5 rules."""
    return CheckSpec(
        gestures=tuple(label.key for label in GESTURES),
        activities=tuple(label.key for label in ACTIVITIES),
        presence=True,
        rules=tuple(RuleSpec(f"rule{index}", text) for index, text in enumerate(RULES, 1)),
        answer_format=answer_format,
    )


def check_requests(mode: str, frames: list[bytes]) -> list[VisionRequest]:
    """Return the requests of one check in this mode, built by the integration's own prompt builders."""
    if mode == PER_CONDITION:
        return [request for _key, request in build_condition_requests(typical_spec(), frames)]
    answer_format = ANSWER_COMPACT if mode == COMBINED_COMPACT else ANSWER_FULL
    return [build_combined_request(typical_spec(answer_format), frames)]


# --- the fewest tokens a format can answer in, from its schema ---------------------------------------------


def minimal_answers(holding: frozenset[str]) -> dict[str, list[str]]:
    """Return, per mode, the shortest reply texts (one per request) saying that exactly `holding` holds."""
    spec = typical_spec()
    aliases = spec.rule_aliases()
    keys = list(compact_keys(replace(spec, answer_format=ANSWER_COMPACT)))

    def compact(value: object) -> str:
        return json.dumps(value, separators=(",", ":"))

    full = {
        "gestures": [label.key for label in spec.enabled_gestures() if label.key in holding],
        "activities": [label.key for label in spec.enabled_activities() if label.key in holding],
        "person_present": "yes" if "person" in holding else "no",
        "rules": {alias: "yes" if alias in holding else "no" for alias in aliases},
    }
    return {
        COMBINED_FULL: [compact(full)],
        COMBINED_COMPACT: [compact({HOLDS_FIELD: [key for key in keys if key in holding]})],
        PER_CONDITION: [compact({"result": "yes" if key in holding else "no"}) for key in keys],
    }


def answer_cases() -> dict[str, frozenset[str]]:
    """Return the scenes the minimal answers are counted for: nothing, a typical scene, everything holds."""
    everything = frozenset(compact_keys(typical_spec(ANSWER_COMPACT)))
    return {
        "nothing holds": frozenset(),
        "a typical scene": frozenset(TYPICAL_SCENE),
        "everything holds": everything,
    }


# --- the server ---------------------------------------------------------------------------------------------


class _Client:
    """Posts the integration's own payloads and keeps what each reply cost."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url
        # Only its payload builder is used: the requests must be the integration's, the replies the server's.
        self._backend = OpenAICompatBackend(session, base_url=f"{url}/v1", model=ALIAS)

    def payload(self, request: VisionRequest, *, logprobs: bool) -> dict[str, Any]:
        """Return the request's payload as the integration sends it, asking for log-probabilities or not."""
        built, frames = self._backend._build_payload(request, FORMAT_JSON_SCHEMA)
        payload: dict[str, Any] = json.loads(_encode_payload(built, frames))
        _ask_logprobs(payload, CHECK_TOP_LOGPROBS if logprobs else None)
        return payload

    async def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one completion; return its completion tokens, reply bytes, wall time and server timings."""
        started = time.monotonic()
        async with self._session.post(
            f"{self._url}/v1/chat/completions", json=payload, timeout=aiohttp.ClientTimeout(total=600)
        ) as response:
            raw = await response.read()
        wall_s = time.monotonic() - started
        if response.status != 200:
            raise RuntimeError(f"llama-server answered {response.status}: {raw[:300]!r}")
        body = json.loads(raw)
        timings = body.get("timings", {})
        return {
            "completion_tokens": body["usage"]["completion_tokens"],
            "reply_bytes": len(raw),
            "wall_s": wall_s,
            "evaluated": timings.get("prompt_n"),
            "predicted_ms": timings.get("predicted_ms"),
            "truncated": body["choices"][0].get("finish_reason") == "length",
            "text": body["choices"][0]["message"].get("content") or "",
        }

    async def tokens(self, text: str) -> int:
        """Return how many tokens the served model's tokenizer makes of the text (no special tokens)."""
        async with self._session.post(f"{self._url}/tokenize", json={"content": text}) as response:
            body = await response.json(content_type=None)
        return len(body["tokens"])


async def _check(client: _Client, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Return one check's totals over its requests (sent one after another, as on one slot)."""
    replies = [await client.post(payload) for payload in payloads]
    return {
        "requests": len(replies),
        **{key: sum(reply[key] for reply in replies) for key in ("completion_tokens", "reply_bytes")},
        "wall_s": round(sum(reply["wall_s"] for reply in replies), 4),
        "predicted_ms": round(sum(reply["predicted_ms"] or 0.0 for reply in replies), 2),
        "evaluated": sum(reply["evaluated"] or 0 for reply in replies),
        "truncated": sum(reply["truncated"] for reply in replies),
        "texts": [reply["text"] for reply in replies],
    }


async def measure(url: str, checks: int) -> dict[str, Any]:
    """Return every check of every variant and the schemas' minimal answers, from a running server."""
    loop = asyncio.get_running_loop()
    frames = await loop.run_in_executor(None, _window)
    async with aiohttp.ClientSession() as session:
        client = _Client(session, url)
        variants = [(mode, logprobs) for mode in MODES for logprobs in (False, True)]
        payloads = {
            (mode, logprobs): [
                client.payload(request, logprobs=logprobs) for request in check_requests(mode, frames)
            ]
            for mode, logprobs in variants
        }
        max_tokens = {
            mode: sum(request.max_tokens for request in check_requests(mode, frames)) for mode in MODES
        }
        rows: list[dict[str, Any]] = []
        samples: dict[str, list[str]] = {}
        # One round more than asked: the first fills the server's prompt cache and is left out.
        for round_index in range(checks + 1):
            # A rotating order, so that no variant always runs first (after another's cache) or last.
            shift = round_index % len(variants)
            for mode, logprobs in variants[shift:] + variants[:shift]:
                row = await _check(client, payloads[(mode, logprobs)])
                texts = row.pop("texts")
                if not logprobs:
                    # What the tiny model wrote (the same at every check: temperature 0, the same frames).
                    samples[mode] = texts
                if round_index:
                    rows.append({"mode": mode, "logprobs": logprobs, "check": round_index, **row})
        minimal = {
            case: {
                mode: sum([await client.tokens(text) for text in texts]) for mode, texts in answers.items()
            }
            for case, answers in (
                (case, minimal_answers(holding)) for case, holding in answer_cases().items()
            )
        }
    return {
        "checks": checks,
        "max_tokens": max_tokens,
        "rows": rows,
        "minimal_tokens": minimal,
        "samples": samples,
    }


def _system_name() -> str:
    """Return the running system's name (inside the newest suite's root filesystem: Debian testing)."""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip('"')
    return "an unnamed system"


def _window() -> list[bytes]:
    """Return one six-frame window of the busy scene at medium detail, as a camera's check would send."""
    scene = build_scenes(("busy",))["busy"]
    jpegs = [scene.frame(slot).jpeg for slot in range(0, 12, 2)]
    return [frame.jpeg for frame in prepare_window(jpegs, DETAIL_BUDGETS["medium"])]


async def async_run(checks: int, log_dir: Path) -> dict[str, Any]:
    """Return the measurement, or a 'skipped' record saying why the C++ server could not run."""
    place = where()
    if place is None:
        return {
            "skipped": f"{BINARY} is not on PATH and {ROOTFS_VARIABLE} is not set (Debian 12 has no "
            "llama.cpp-tools package; the newest suite's Debian-testing root filesystem has it)"
        }
    if not MODEL.exists() or not MMPROJ.exists():
        return {"skipped": f"the tiny model pair is missing from {FIXTURES}"}
    loop = asyncio.get_running_loop()
    server = CppServer(log_dir / "llama-server-answer-cost.log")
    await loop.run_in_executor(None, server.start)
    try:
        version = await loop.run_in_executor(None, server.version)
        system = _system_name() if place == "host" else "the Debian-testing root filesystem"
        return {"where": place, "system": system, "version": version, **await measure(server.url, checks)}
    finally:
        with contextlib.suppress(Exception):
            await loop.run_in_executor(None, server.stop)


# --- the summary and the report ----------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile (p90: the value 90 % of the checks are at or under)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Return per mode and logprobs setting the median and p90 of tokens, bytes and wall time per check."""
    out = []
    for mode in MODES:
        for logprobs in (False, True):
            rows = [row for row in result["rows"] if row["mode"] == mode and row["logprobs"] is logprobs]
            entry: dict[str, Any] = {"mode": mode, "logprobs": logprobs, "requests": rows[0]["requests"]}
            for key in ("completion_tokens", "reply_bytes", "wall_s", "predicted_ms", "evaluated"):
                values = [float(row[key]) for row in rows]
                entry[key] = {"median": statistics.median(values), "p90": percentile(values, 0.9)}
            entry["truncated"] = sum(row["truncated"] for row in rows)
            out.append(entry)
    return out


def _of(entries: list[dict[str, Any]], mode: str, logprobs: bool) -> dict[str, Any]:
    return next(entry for entry in entries if entry["mode"] == mode and entry["logprobs"] is logprobs)


def report_lines(result: dict[str, Any]) -> list[str]:
    """Return answer_cost.md."""
    lines = ["# Answer length and log-probability cost on llama.cpp's C++ llama-server", ""]
    if "skipped" in result:
        return [*lines, f"Skipped: {result['skipped']}.", ""]
    entries = summary(result)
    lines += [
        f"llama-server {result['version']} (Debian's llama.cpp-tools), on {result['system']}, one slot, one "
        "thread, the tiny random-weight Qwen2.5-VL pair. A typical camera: 6 gestures, 5 activities, presence "
        f"and 5 rules (17 conditions). {result['checks']} checks per variant on the same six frames (medium "
        "detail), the six variants interleaved in a rotating order, after one warm-up round; `max_tokens` "
        "as the integration bounds it ("
        + ", ".join(f"{mode}: {tokens}" for mode, tokens in result["max_tokens"].items())
        + " per check). Generated by `python -m benchmarks.answer_cost` "
        "(`scripts/bench --answer-cost`).",
        "",
        "## From the schemas: the fewest completion tokens per check",
        "",
        "The shortest reply each format allows (no whitespace, no reason), counted by the tiny model's "
        "tokenizer (the server's `/tokenize`); per condition, the 17 replies together.",
        "",
        "| scene | " + " | ".join(MODES) + " | compact / full |",
        "|---|" + "---|" * (len(MODES) + 1),
    ]
    for case, counts in result["minimal_tokens"].items():
        lines.append(
            f"| {case} | "
            + " | ".join(str(counts[mode]) for mode in MODES)
            + f" | {counts[COMBINED_COMPACT] / counts[COMBINED_FULL]:.2f} |"
        )
    lines += [
        "",
        "This is the real cost of each format's structure: the full answer names every rule and says yes or "
        "no to presence whatever the scene, the compact one only what holds. The tiny tokenizer has 370 "
        "tokens and takes about one per 1.5 characters where Qwen's takes about four, so the absolute "
        "counts are about 2.5 times a 7B Qwen's; the ratios between formats hold roughly.",
        "",
        "## Measured: per check, median (p90)",
        "",
        "| mode | logprobs | requests | completion tokens | reply bytes | wall s | generation ms | "
        "prompt tokens evaluated | stopped at `max_tokens` |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        integration = " (integration)" if INTEGRATION_LOGPROBS[entry["mode"]] is entry["logprobs"] else ""
        cells = " | ".join(
            f"{_num(entry[key]['median'])} ({_num(entry[key]['p90'])})"
            for key in ("completion_tokens", "reply_bytes", "wall_s", "predicted_ms", "evaluated")
        )
        asked = "top 5" if entry["logprobs"] else "off"
        lines.append(
            f"| {entry['mode']} | {asked}{integration} | {entry['requests']} | {cells} "
            f"| {entry['truncated']}/{result['checks'] * entry['requests']} |"
        )
    lines += [
        "",
        "## Ratios (medians)",
        "",
        "| mode | logprobs on / off: reply bytes | wall s | bytes logprobs add per token | against the full "
        "answer, logprobs off: completion tokens | wall s | against the full answer, each as the integration "
        "asks: reply bytes | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base, asked_base = _of(entries, COMBINED_FULL, False), _of(entries, COMBINED_FULL, True)
    for mode in MODES:
        on, off = _of(entries, mode, True), _of(entries, mode, False)
        as_asked = _of(entries, mode, INTEGRATION_LOGPROBS[mode])
        tokens = on["completion_tokens"]["median"]
        added = (on["reply_bytes"]["median"] - off["reply_bytes"]["median"]) / tokens if tokens else 0.0
        lines.append(
            f"| {mode} | {_ratio(on, off, 'reply_bytes')} | {_ratio(on, off, 'wall_s')} | {added:,.0f} "
            f"| {_ratio(off, base, 'completion_tokens')} | {_ratio(off, base, 'wall_s')} "
            f"| {_ratio(as_asked, asked_base, 'reply_bytes')} | {_ratio(as_asked, asked_base, 'wall_s')} |"
        )
    truncated = sum(entry["truncated"] for entry in entries)
    lines += [
        "",
        "What the tiny model wrote, logprobs off (temperature 0: the same at every check):",
        "",
        *(f"- {mode}: `{_short(result['samples'][mode])}`" for mode in MODES),
        "",
        "What the tiny model's numbers tell: the reply bytes that log-probabilities add per generated token "
        "(each token then carries its five alternatives as JSON), what they add to the wall time, and how a "
        "format's length turns into generation time on this server. What they do not tell: how long a "
        "trained model's answers are. Random weights pick keys and write reasons of arbitrary length within "
        "the schema, so the measured token counts are the tiny model's, not MiMo-VL's"
        + (
            f" ({truncated} replies ran to `max_tokens`, the last column)"
            if truncated
            else " (none ran to `max_tokens` here)"
        )
        + "; the schema minima above are the part that carries over. Prompt evaluation is served from the "
        "cache here (the same frames every check: the evaluated column), so the wall times are chiefly "
        "generation; a camera's fresh frames add the same image evaluation to either combined format. "
        "Absolute times on this shared two-core machine are noise; compare within the run.",
        "",
    ]
    return lines


def _short(texts: list[str], chars: int = 160) -> str:
    """Return a check's reply texts on one line, the first of several followed by their count."""
    text = " ".join(texts[0].split()) if texts else ""
    more = f" … (+{len(texts) - 1} more replies)" if len(texts) > 1 else ""
    return (text[:chars] + ("…" if len(text) > chars else "")).replace("`", "'") + more


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:.3g}"


def _ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> str:
    denominator = b[key]["median"]
    return f"{a[key]['median'] / denominator:.2f}" if denominator else "–"


def main() -> None:
    """Run the measurement and write answer_cost.md and answer_cost.json into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent, help="default: benchmarks/"
    )
    parser.add_argument(
        "--checks", type=int, default=DEFAULT_CHECKS, help=f"per variant (default {DEFAULT_CHECKS})"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="miloco-answer-cost-") as log_dir:
        result = asyncio.run(async_run(args.checks, Path(log_dir)))
    if "skipped" not in result:
        result["summary"] = summary(result)
    (args.out / "answer_cost.json").write_text(json.dumps(result, indent=1) + "\n")
    text = "\n".join(report_lines(result)) + "\n"
    (args.out / "answer_cost.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
