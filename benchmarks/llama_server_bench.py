"""llama.cpp's C++ llama-server (the server users run), measured with the tiny Qwen2.5-VL pair.

Three questions, each answered from the server's own counts (`usage.prompt_tokens`, and `timings.prompt_n`
/ `timings.cache_n`: the prompt tokens it actually evaluated, and those it took from its prompt cache):

- image tokens: what one frame costs as the server counts it, against `engine.frames.image_tokens`, for the
  sizes the integration plans (every detail preset, from a 1280×720 camera) and a few small ones; with the
  server's default minimum and with `--image-min-tokens 1024`, the value its Qwen-VL warning suggests;
- the prompt cache over consecutive checks of one camera (each check's window is 2 s newer, as at the
  default interval): how many prompt tokens each check really evaluates, with the integration's prompt
  order (system prompt, lead-in, frames, then the question with the rules) and with the question moved
  before the frames;
- one combined request against one request per condition, per check, with the cache on and off.

The token counts come from the real preprocessing (the tiny projector is a Qwen2.5-VL merger with 14-px
patches, so it sizes images exactly as the 7B one does); only the answers are meaningless.

Where it runs: on the host when `llama-server` is on PATH; otherwise inside the project's Debian-testing
root filesystem (scripts/bench sets MILOCO_LLAMA_CPP_ROOTFS=1 after making sure the root filesystem has
llama.cpp-tools): the server runs there through scripts/lib/rootfs.sh's `rootfs_exec`, which shares the
host's network, so the benchmark on the host reaches it on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import replace
import io
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any, Final

import aiohttp
from PIL import Image

from benchmarks.conditions import RULE_CONDITIONS
from benchmarks.scenes import Scene, build_scenes
from custom_components.miloco.engine.backends.base import VisionRequest
from custom_components.miloco.engine.backends.openai_compat import (
    FORMAT_JSON_SCHEMA,
    OpenAICompatBackend,
    _encode_payload,
)
from custom_components.miloco.engine.frames import (
    DETAIL_BUDGETS,
    PreparedFrame,
    image_tokens,
    plan_sizes,
    prepare_window,
)
from custom_components.miloco.engine.prompt import (
    CheckSpec,
    RuleSpec,
    build_combined_request,
    build_condition_requests,
)
from testkit.llama_server import ALIAS, FIXTURES, MMPROJ, MODEL, LlamaServer, cpp_server_command
from testkit.ports import free_port

REPO: Final = Path(__file__).resolve().parent.parent
BINARY: Final = "llama-server"
ROOTFS_VARIABLE: Final = "MILOCO_LLAMA_CPP_ROOTFS"
# The cameras the integration's plans are computed for: the benchmark's scenes (1280×720) and a 4:3 one.
SOURCES: Final = ((1280, 720), (640, 480))
WINDOW_FRAMES: Final = 6
DEFAULT_PLAN: Final = "1280×720, medium detail"
# Sizes below the integration's plans: a middle frame at a small budget, Qwen's floor, and below it.
SMALL_SIZES: Final = ((112, 112), (84, 56), (56, 56), (28, 28))
# The minimum the server's warning for Qwen-VL models suggests ("at minimum 1024 image tokens").
SUGGESTED_MIN_TOKENS: Final = 1024
# Consecutive checks of one camera: windows of six frames at 2 fps, each 2 s newer (8 quarter-second slots).
CHECK_STEP_SLOTS: Final = 8
CHECKS: Final = 3


def rule_spec(rules: int) -> CheckSpec:
    """Return a check of `rules` rules with everyday conditions (the same texts for both servers' sections)."""
    return CheckSpec(
        rules=tuple(RuleSpec(f"rule{i}", RULE_CONDITIONS[i % len(RULE_CONDITIONS)]) for i in range(rules)),
        fps=2.0,
    )


def where() -> str | None:
    """Return "host" or "rootfs" (where llama-server can run), or None."""
    if shutil.which(BINARY):
        return "host"
    if os.environ.get(ROOTFS_VARIABLE) == "1":
        return "rootfs"
    return None


class CppServer(LlamaServer):
    """llama-server with the tiny pair and one slot (so consecutive requests meet the same cache)."""

    kind = "cpp"
    # /health answers 503 while the model loads, 200 once it can serve.
    ready_path = "/health"

    def __init__(self, log_path: Path, *, extra: tuple[str, ...] = ()) -> None:
        """Prepare a server on a free port; nothing runs until start()."""
        super().__init__(free_port(), log_path)
        self.extra = extra

    def command(self) -> list[str]:
        """Return the command line, wrapped in rootfs_exec when the server lives in the root filesystem."""
        # A context large enough for the raised image-token floor's windows.
        server = cpp_server_command(BINARY, self.port, ctx_size=16384, extra=self.extra)
        if where() == "host":
            return server
        lib = REPO / "scripts" / "lib"
        script = f'source "{lib}/common.sh"; source "{lib}/rootfs.sh"; rootfs_exec "$@"'
        return ["bash", "-c", script, "rootfs_exec", *server]

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the server and wait until it has loaded the model (longer inside the root filesystem)."""
        super().start(timeout_s)

    def version(self) -> str:
        """Return the server's `--version` line (run where the server runs), or "unknown"."""
        command = self.command()
        command = [*command[: command.index(BINARY) + 1], "--version"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
        found = re.search(r"version:\s*(.+)", done.stdout + done.stderr)
        return found.group(1).strip() if found else "unknown"

    def warnings(self) -> list[str]:
        """Return the log's lines about image tokens (the Qwen-VL warning among them), without their stamps."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        found = [line for line in lines if re.search(r"image.?(min|max).?tokens|image tokens", line, re.I)]
        # Drop the "0.00.159.480 W " time and level prefix.
        return list(dict.fromkeys(re.sub(r"^[\d.]+ [A-Z] ", "", line).strip() for line in found))


class _Client:
    """Posts chat completions built by the integration's own client, keeping the server's full reply."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = f"{url}/v1/chat/completions"
        # Only its payload builder is used: the requests must be the integration's, the reply the server's.
        self._backend = OpenAICompatBackend(session, base_url=f"{url}/v1", model=ALIAS)

    def payload(self, request: VisionRequest, *, question_first: bool = False) -> dict[str, Any]:
        """Return the integration's payload; question_first moves the question before the lead-in and frames."""
        built, frames = self._backend._build_payload(request, FORMAT_JSON_SCHEMA)
        payload: dict[str, Any] = json.loads(_encode_payload(built, frames))
        if question_first:
            content = payload["messages"][-1]["content"]
            payload["messages"][-1]["content"] = [content[-1], *content[:-1]]
        return payload

    async def post(self, payload: dict[str, Any], *, cache: bool) -> dict[str, Any]:
        """Send one completion; return prompt, evaluated, cached and completion tokens and the wall time."""
        started = time.monotonic()
        async with self._session.post(
            self._url, json={**payload, "cache_prompt": cache}, timeout=aiohttp.ClientTimeout(total=600)
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                raise RuntimeError(f"llama-server answered {response.status}: {str(body)[:300]}")
        usage, timings = body.get("usage", {}), body.get("timings", {})
        return {
            "prompt_tokens": usage.get("prompt_tokens"),
            "evaluated": timings.get("prompt_n"),
            "cached": timings.get("cache_n"),
            "completion_tokens": usage.get("completion_tokens"),
            "prompt_ms": timings.get("prompt_ms"),
            "wall_s": round(time.monotonic() - started, 3),
        }


def _jpeg_of_size(source: bytes, size: tuple[int, int]) -> bytes:
    """Return the frame resized to `size` as a JPEG (what the integration would send at that size)."""
    with Image.open(io.BytesIO(source)) as image:
        resized = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    resized.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _planned_sizes() -> dict[str, list[tuple[int, int]]]:
    """Return the frame sizes of a six-frame window at each detail preset, for each source camera."""
    return {
        f"{width}×{height}, {detail} detail": plan_sizes(
            width / height, WINDOW_FRAMES, budget, source=(width, height)
        )
        for width, height in SOURCES
        for detail, budget in DETAIL_BUDGETS.items()
    }


def _single_image_request(jpeg: bytes | None) -> VisionRequest:
    """Return a short question about one frame (or none: the baseline the frame's cost is counted from)."""
    return VisionRequest(
        system_prompt="You describe images.",
        lead_in="Image:",
        frames=(jpeg,) if jpeg is not None else (),
        question="What is shown?",
        max_tokens=1,
    )


async def _image_costs(client: _Client, frame: bytes, *, only_default: bool = False) -> list[dict[str, Any]]:
    """Return, per frame size, the prompt tokens one frame adds as the server counts them.

    only_default: the default plan (a 1280×720 camera at medium detail) and the smallest sizes only.
    """
    sizes: list[tuple[str, tuple[int, int]]] = []
    for label, planned in _planned_sizes().items():
        if only_default and label != DEFAULT_PLAN:
            continue
        sizes.extend((label, size) for size in dict.fromkeys(planned))
    sizes += [("small", size) for size in SMALL_SIZES]
    baseline = await client.post(client.payload(_single_image_request(None)), cache=False)
    rows = []
    for label, size in sizes:
        jpeg = await asyncio.get_running_loop().run_in_executor(None, _jpeg_of_size, frame, size)
        reply = await client.post(client.payload(_single_image_request(jpeg)), cache=False)
        rows.append(
            {
                "source": label,
                "size": list(size),
                "ours": image_tokens(*size),
                # The difference to the same request without the frame: the image's tokens plus the two
                # <|vision_start|>/<|vision_end|> markers the chat template wraps it in.
                "server_added": reply["prompt_tokens"] - baseline["prompt_tokens"],
            }
        )
    return rows


class _Camera:
    """Consecutive check windows of one camera, every frame unique, as a real camera's sensor noise makes them.

    The scene's frames repeat (its loop, its few noise fields); the server's prompt cache would then find
    whole windows it saw before, which no real camera produces. Each prepared frame gets its serial number
    drawn into one corner, so no two frames of the run are the same picture.
    """

    def __init__(self, scene: Scene) -> None:
        self._scene = scene
        self._check = 0
        self._serial = 0

    def next_window(self) -> list[PreparedFrame]:
        """Return the next check's window (2 s after the previous one), prepared at medium detail."""
        first = CHECK_STEP_SLOTS * self._check
        self._check += 1
        jpegs = [self._scene.frame(first + slot).jpeg for slot in range(0, 12, 2)]
        frames = prepare_window(jpegs, DETAIL_BUDGETS["medium"])
        unique = []
        for frame in frames:
            self._serial += 1
            unique.append(replace(frame, jpeg=_stamped(frame.jpeg, self._serial)))
        return unique

    def next_checks(self, count: int) -> list[list[bytes]]:
        """Return the frames of `count` consecutive checks."""
        return [[frame.jpeg for frame in self.next_window()] for _ in range(count)]


def _stamped(jpeg: bytes, serial: int) -> bytes:
    """Return the frame with `serial` drawn as a row of black and white 4-px cells in its top-left corner."""
    with Image.open(io.BytesIO(jpeg)) as image:
        picture = image.convert("RGB")
    for bit in range(16):
        colour = (255, 255, 255) if serial >> bit & 1 else (0, 0, 0)
        picture.paste(colour, (4 * bit, 0, 4 * bit + 4, 4))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=85)
    return out.getvalue()


async def _cache_over_checks(
    client: _Client, camera: _Camera, rule_counts: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Return per check the prompt tokens evaluated with the cache on, in both prompt orders."""
    loop = asyncio.get_running_loop()
    rows = []
    for rules in rule_counts:
        for question_first in (False, True):
            windows = await loop.run_in_executor(None, camera.next_checks, CHECKS + 1)
            # A request about other frames first, so the first check meets a cache of another prompt.
            await client.post(client.payload(_single_image_request(windows[0][0])), cache=True)
            for check, frames in enumerate(windows[1:]):
                request = build_combined_request(rule_spec(rules), frames)
                reply = await client.post(client.payload(request, question_first=question_first), cache=True)
                rows.append({"rules": rules, "order": _order(question_first), "check": check, **reply})
    return rows


def _order(question_first: bool) -> str:
    return "question, then frames" if question_first else "frames, then question (ours)"


async def _combined_vs_conditions(
    client: _Client, camera: _Camera, rule_counts: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Return per check the cost of one combined request against one request per rule."""
    loop = asyncio.get_running_loop()
    rows = []
    for cache in (True, False):
        for rules in rule_counts:
            for mode in ("combined", "per_condition"):
                spec = rule_spec(rules)
                # With the cache, two checks: the second shows the steady state (the cache holds the previous
                # check). Without it every check costs the same: one is enough.
                windows = await loop.run_in_executor(None, camera.next_checks, 2 if cache else 1)
                for check, frames in enumerate(windows):
                    if mode == "combined":
                        requests = [build_combined_request(spec, frames)]
                    else:
                        requests = [request for _key, request in build_condition_requests(spec, frames)]
                    replies = [
                        await client.post(client.payload(request), cache=cache) for request in requests
                    ]
                    rows.append(
                        {
                            "cache": cache,
                            "rules": rules,
                            "mode": mode,
                            "check": check,
                            "requests": len(requests),
                            **{
                                key: sum(reply[key] or 0 for reply in replies)
                                for key in ("prompt_tokens", "evaluated", "cached", "completion_tokens")
                            },
                            "prompt_ms": round(sum(reply["prompt_ms"] or 0 for reply in replies), 1),
                            "wall_s": round(sum(reply["wall_s"] for reply in replies), 3),
                        }
                    )
    return rows


async def async_bench(rule_counts: tuple[int, ...], log_dir: Path) -> dict[str, Any]:
    """Return the llama-server section, or a 'skipped' record saying why it could not run."""
    place = where()
    if place is None:
        return {
            "skipped": f"{BINARY} is not on PATH and {ROOTFS_VARIABLE} is not set (scripts/bench sets it when "
            "the Debian-testing root filesystem has llama.cpp-tools; Debian 12 has no such package)"
        }
    if not MODEL.exists() or not MMPROJ.exists():
        return {"skipped": f"the tiny model pair is missing from {FIXTURES}"}
    loop = asyncio.get_running_loop()
    # The busy room: every frame of the loop differs, as in a scene that keeps the gate open.
    camera = _Camera(build_scenes(("busy",))["busy"])
    window = await loop.run_in_executor(None, camera.next_window)
    result: dict[str, Any] = {
        "where": place,
        "window": [[frame.width, frame.height] for frame in window],
        "window_tokens_ours": sum(frame.tokens for frame in window),
    }
    for name, extra in (("default", ()), ("min_1024", ("--image-min-tokens", str(SUGGESTED_MIN_TOKENS)))):
        server = CppServer(log_dir / f"llama-server-{name}.log", extra=extra)
        await loop.run_in_executor(None, server.start)
        try:
            async with aiohttp.ClientSession() as session:
                client = _Client(session, server.url)
                # Images scaled up to 1024 tokens are slow to encode: the raised floor gets fewer sizes.
                costs = await _image_costs(client, window[-1].jpeg, only_default=name != "default")
                if name == "default":
                    result["version"] = await loop.run_in_executor(None, server.version)
                    result["image_tokens"] = costs
                    result["cache"] = await _cache_over_checks(client, camera, rule_counts)
                    result["modes"] = await _combined_vs_conditions(client, camera, rule_counts)
                else:
                    result["image_tokens_min_1024"] = costs
            result[f"log_{name}"] = server.warnings()
        finally:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, server.stop)
    return result


# --- results.md -------------------------------------------------------------------------------------------


def report_lines(section: dict[str, Any] | None) -> list[str]:
    """Return results.md's llama-server section (benchmarks/report.py calls this)."""
    lines = ["## llama.cpp's C++ llama-server: image tokens, prompt cache, combined versus per condition", ""]
    if section is None:
        return [*lines, "Not run (results from before this section existed).", ""]
    if "skipped" in section:
        return [*lines, f"Skipped: {section['skipped']}.", ""]
    lines += [
        f"llama-server {section['version']} (Debian's llama.cpp-tools), run on the {section['where']}"
        + (
            " (the Debian-testing root filesystem, through `rootfs_exec`)"
            if section["where"] == "rootfs"
            else ""
        )
        + ", one slot, one thread, the tiny random-weight Qwen2.5-VL pair: its projector sizes images exactly as the 7B "
        "one does, so the token counts are real; answers and generation times are not. Counts are the "
        "server's own: `usage.prompt_tokens`, `timings.prompt_n` (prompt tokens it evaluated) and "
        "`timings.cache_n` (taken from its prompt cache).",
        "",
    ]
    lines += _image_lines(section)
    lines += _cache_lines(section)
    lines += _mode_lines(section)
    return lines


def _server_tokens(row: dict[str, Any]) -> int:
    """Return the frame's own tokens: what it added to the prompt minus the two vision markers."""
    return int(row["server_added"]) - 2


def _image_lines(section: dict[str, Any]) -> list[str]:
    raised = {tuple(row["size"]): _server_tokens(row) for row in section["image_tokens_min_1024"]}
    lines = [
        "### Image tokens per frame",
        "",
        "Each frame alone in a short request, minus the same request without it, minus the two "
        "`<|vision_start|>`/`<|vision_end|>` markers; the planned sizes are the integration's for "
        f"a {WINDOW_FRAMES}-frame window from the camera named.",
        "",
        "| frame | planned for | ours (`image_tokens`) | llama-server (default) | with `--image-min-tokens 1024` |",
        "|---|---|---|---|---|",
    ]
    rows = section["image_tokens"]
    lines += [
        f"| {row['size'][0]}×{row['size'][1]} | {row['source']} | {row['ours']} | {_server_tokens(row)} "
        f"| {raised.get(tuple(row['size']), '–')} |"
        for row in rows
    ]
    planned = [row for row in rows if row["source"] != "small"]
    off = [row for row in rows if _server_tokens(row) != row["ours"]]
    agree = all(_server_tokens(row) == row["ours"] for row in planned)
    lines += [
        "",
        (
            "Every planned size costs exactly what our arithmetic says: the server does not upscale them. "
            if agree
            else "Some planned sizes cost more than our arithmetic says. "
        )
        + (
            "Below our floor it does: "
            + ", ".join(
                f"{row['size'][0]}×{row['size'][1]} costs {_server_tokens(row)} (ours {row['ours']})"
                for row in off
            )
            + " (the server's default minimum for Qwen2.5-VL is 8 tokens, where ours is 4). "
            if off
            else ""
        )
        + "With `--image-min-tokens 1024`, every frame is scaled up to at least 1024 tokens, so a "
        f"{WINDOW_FRAMES}-frame window costs over {WINDOW_FRAMES * 1024:,} tokens instead of "
        f"{section['window_tokens_ours']}: leave the flag unset (or at most the smallest planned frame's "
        "tokens) for this integration.",
        "",
    ]
    warnings = section.get("log_default") or []
    if warnings:
        lines += ["The server's log at start-up: " + " ".join(f"`{line}`" for line in warnings), ""]
    return lines


def _cache_lines(section: dict[str, Any]) -> list[str]:
    lines = [
        "### The prompt cache over consecutive checks",
        "",
        f"{CHECKS} consecutive combined checks of one camera (windows 2 s apart: "
        + ", ".join(f"{w}×{h}" for w, h in section["window"])
        + f", {section['window_tokens_ours']} image tokens), `cache_prompt: true`, after a request about "
        "other frames; steady state = the mean of the checks after the first.",
        "",
        "| rules | prompt order | prompt tokens | of which text | evaluated, first check | evaluated, steady "
        "| cached, steady |",
        "|---|---|---|---|---|---|---|",
    ]
    # Every frame of a window adds its tokens and the two vision markers.
    image_part = section["window_tokens_ours"] + 2 * len(section["window"])
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in section["cache"]:
        groups.setdefault((row["rules"], row["order"]), []).append(row)
    for (rules, order), rows in groups.items():
        steady = rows[1:] or rows
        evaluated = sum(row["evaluated"] for row in steady) / len(steady)
        cached = sum(row["cached"] for row in steady) / len(steady)
        lines.append(
            f"| {rules} | {order} | {rows[0]['prompt_tokens']} | {rows[0]['prompt_tokens'] - image_part} "
            f"| {rows[0]['evaluated']} | {evaluated:.0f} | {cached:.0f} |"
        )
    lines += [
        "",
        "The cache keeps the longest common prefix with the slot's previous prompt (and restores a saved "
        "one from its RAM cache when that matches longer). The oldest frame differs at every check, so with "
        "the frames before the question only the text before them (chat template, system prompt, lead-in) is "
        "reused; with the question before the frames, its rule text is reused as well. The image tokens are "
        "evaluated at every check in both orders. The tiny model's vocabulary has 370 tokens, so its text "
        "costs about one token per 1.5 characters where Qwen's tokenizer takes about four: the text columns "
        "here are roughly 2.5 times what the 7B model would count, the image tokens are exact.",
        "",
    ]
    return lines


def _mode_lines(section: dict[str, Any]) -> list[str]:
    lines = [
        "### Combined versus per-condition requests",
        "",
        "With the cache, the second of two consecutive checks (the first meets a colder cache); without "
        "it, one check. One slot, the requests of a check one after the other; figures per check.",
        "",
        "| `cache_prompt` | rules | mode | requests | prompt tokens | evaluated | cached | completion tokens "
        "| prompt ms | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {row['cache']} | {row['rules']} | {row['mode']} | {row['requests']} | {row['prompt_tokens']:,} "
        f"| {row['evaluated']:,} | {row['cached']:,} | {row['completion_tokens']:,} | {row['prompt_ms']:,.0f} "
        f"| {row['wall_s']:.2f} |"
        for row in section["modes"]
        if row["check"] == (1 if row["cache"] else 0)
    ]
    lines += [
        "",
        "Per-condition requests about the same frames share the prefix up to the question, so with the cache "
        "on each one after the first evaluates only its question: their prompt cost grows by a few tokens "
        "per rule, not by the window. Without the cache (or when parallel requests land on different slots, "
        "each with its own cache) every one evaluates the whole window again. The token columns are "
        "deterministic; prompt ms and wall s are the tiny model on this machine's CPUs and move with its "
        "load.",
        "",
    ]
    return lines


def main() -> None:
    """Run this section alone: `python -m benchmarks.llama_server_bench --out DIR` (scripts/bench runs it too)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for section.json and section.md")
    parser.add_argument("--rules", default="1,5,10", help="rule counts, comma-separated (default: 1,5,10)")
    args = parser.parse_args()
    rules = tuple(int(count) for count in args.rules.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="miloco-llama-server-") as log_dir:
        section = asyncio.run(async_bench(rules, Path(log_dir)))
    (args.out / "section.json").write_text(json.dumps(section, indent=1) + "\n")
    (args.out / "section.md").write_text("\n".join(report_lines(section)) + "\n")
    print("\n".join(report_lines(section)))


if __name__ == "__main__":
    main()
