"""A simulated OpenAI-compatible vision model on loopback, run as a process of its own.

It answers from the pictures: the benchmark's scenes mark what a real model would recognise with
colours no room object has (a magenta card is the raised hand, an orange shirt the person walking in), and
this server looks for those colours in the newest frame of each request. It answers after the time the
cost model gives for the request: a fixed part, plus a price per image token (counted from the image
sizes, 28×28 px a token) and per output token. `usage.prompt_tokens` reports the image tokens and
`usage.completion_tokens` the output tokens, so that a client can recompute the model time of each reply.

Run: python -m benchmarks.model_sim --fixed-ms 50 --image-token-ms 0.3 --output-token-ms 10 [--slots N]
It prints `PORT <n>` once it listens, and stops on SIGTERM or when its standard input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import io
import json
import re
import signal
import sys
from typing import Any, Final

from aiohttp import web
import numpy as np
from PIL import Image

from benchmarks.costmodel import CostModel, output_tokens
from custom_components.miloco.engine.frames import image_tokens

# What each condition needs to see, by a phrase in its text.
CONDITION_MARKERS: Final = {"thumbs-up": "gesture", "walks across": "walker"}
# A marker is visible when at least this share of the newest frame's pixels has its colour.
MIN_SHARE: Final = 0.0008
MIN_PIXELS: Final = 4
_CONDITION = re.compile(r"following condition: (.*?)\.?(?:/no_think)?$", re.DOTALL)
_RULE_LINE = re.compile(r"^(r\d+): (.*)$", re.MULTILINE)
# Enough base64 to hold a JPEG's headers up to the frame size (SOF comes after the tables).
_HEADER_CHARS: Final = 4096


def visible_markers(jpeg: bytes) -> set[str]:
    """Return the markers (gesture, walker) whose colour shows in the picture."""
    image = Image.open(io.BytesIO(jpeg))
    # Decode at a quarter size or less: the markers are large blobs, and this process shares the CPUs.
    image.draft("RGB", (max(1, image.width // 4), max(1, image.height // 4)))
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    masks = {
        "gesture": (red > 170) & (green < 100) & (blue > 170),
        "walker": (red > 200) & (green > 90) & (green < 180) & (blue < 80),
    }
    needed = max(MIN_PIXELS, MIN_SHARE * red.size)
    return {name for name, mask in masks.items() if int(mask.sum()) >= needed}


def holds(condition: str, seen: set[str]) -> bool:
    """Return whether the simulated model says yes to a condition, given the markers it sees."""
    lowered = condition.lower()
    return any(phrase in lowered and marker in seen for phrase, marker in CONDITION_MARKERS.items())


def _image_size(url: str) -> tuple[int, int]:
    """Return the size of the JPEG in a data URL, reading its headers only."""
    encoded = url.split(",", 1)[1]
    head = encoded[: _HEADER_CHARS - _HEADER_CHARS % 4]
    try:
        return Image.open(io.BytesIO(base64.b64decode(head))).size
    except (OSError, binascii.Error):
        # Headers longer than the excerpt: decode the whole picture.
        return Image.open(io.BytesIO(base64.b64decode(encoded))).size


def answer(body: dict[str, Any]) -> tuple[str, int, int]:
    """Return the reply text, the image tokens and the number of images of a chat request."""
    content = body["messages"][-1]["content"]
    urls = [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]
    texts = [part["text"] for part in content if part.get("type") == "text"]
    tokens = sum(image_tokens(*_image_size(url)) for url in urls)
    seen = visible_markers(base64.b64decode(urls[-1].split(",", 1)[1])) if urls else set()
    question = texts[-1] if texts else ""
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema") or response_format.get("schema")
    if schema and "result" not in schema.get("properties", {}):
        return json.dumps(_combined(schema, question, seen)), tokens, len(urls)
    match = _CONDITION.search(question)
    verdict = "yes" if match and holds(match.group(1), seen) else "no"
    return json.dumps({"result": verdict}), tokens, len(urls)


def _combined(schema: dict[str, Any], question: str, seen: set[str]) -> dict[str, Any]:
    """Return the answer to a combined request (labels, presence and rules r1, r2, …)."""
    properties = schema.get("properties", {})
    reply: dict[str, Any] = {}
    if "gestures" in properties:
        keys = properties["gestures"]["items"]["enum"]
        reply["gestures"] = ["thumbs_up"] if "gesture" in seen and "thumbs_up" in keys else []
    if "activities" in properties:
        reply["activities"] = []
    if "person_present" in properties:
        reply["person_present"] = "yes"
    if "rules" in properties:
        conditions = dict(_RULE_LINE.findall(question))
        reply["rules"] = {
            alias: "yes" if holds(conditions.get(alias, ""), seen) else "no"
            for alias in properties["rules"]["properties"]
        }
    reply["reason"] = "a hand holds a card up" if "gesture" in seen else "a room"
    return reply


class SimulatedModel:
    """The aiohttp application: /v1/models, /v1/chat/completions and /bench/stats."""

    def __init__(self, cost: CostModel, slots: int) -> None:
        """Answer with the given cost model; `slots` > 0 serves that many requests at once (others queue)."""
        self.cost = cost
        self._slots = asyncio.Semaphore(slots) if slots > 0 else None
        self.requests: dict[str, int] = {}
        self.image_tokens: dict[str, int] = {}
        self.in_flight = 0
        self.in_flight_max = 0

    def app(self) -> web.Application:
        """Return the application."""
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/bench/stats", self._stats)
        return app

    async def _models(self, _request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model"} for name in ("bench-ours", "bench-reference", "bench-naive")]
        return web.json_response({"object": "list", "data": data})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "image_tokens": self.image_tokens,
                "in_flight_max": self.in_flight_max,
                "cost": self.cost.as_dict(),
            }
        )

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        text, tokens, _images = answer(body)
        completion = output_tokens(text)
        model = str(body.get("model"))
        self.requests[model] = self.requests.get(model, 0) + 1
        self.image_tokens[model] = self.image_tokens.get(model, 0) + tokens
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            if self._slots is None:
                await asyncio.sleep(self.cost.model_time(tokens, completion))
            else:
                async with self._slots:
                    await asyncio.sleep(self.cost.model_time(tokens, completion))
        finally:
            self.in_flight -= 1
        return web.json_response(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": tokens,
                    "completion_tokens": completion,
                    "total_tokens": tokens + completion,
                },
            }
        )


async def serve(cost: CostModel, slots: int, port: int) -> None:
    """Listen on loopback until SIGTERM or the end of standard input."""
    runner = web.AppRunner(SimulatedModel(cost, slots).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    bound = server.sockets[0].getsockname()[1] if server is not None else port  # type: ignore[attr-defined]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stdin_closed = asyncio.ensure_future(reader.read())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({stdin_closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in (stdin_closed, stopped):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await runner.cleanup()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fixed-ms", type=float, default=50.0)
    parser.add_argument("--image-token-ms", type=float, default=0.3)
    parser.add_argument("--output-token-ms", type=float, default=10.0)
    parser.add_argument("--slots", type=int, default=0, help="requests served at once (0: no limit)")
    args = parser.parse_args()
    cost = CostModel(
        fixed_s=args.fixed_ms / 1000,
        per_image_token_s=args.image_token_ms / 1000,
        per_output_token_s=args.output_token_ms / 1000,
    )
    asyncio.run(serve(cost, args.slots, args.port))


if __name__ == "__main__":
    main()
