"""The connection probe: one tiny real vision request that proves a model sees and answers in JSON."""

from __future__ import annotations

from functools import cache
import io
from typing import Any, Final

from PIL import Image, ImageDraw

from .backends.base import VisionReply, VisionRequest
from .parse import parse_reply, yes_no_schema

PROBE_SIZE: Final = 112  # 4×4 patches of 28 px: the smallest image that tokenises without padding
PROBE_SCHEMA: Final = yes_no_schema()
PROBE_SYSTEM_PROMPT: Final = (
    'You are a smart home camera assistant. Answer only with JSON: {"result": "yes"} or {"result": "no"}.'
)
PROBE_QUESTION: Final = "Does the image show a red square?"


@cache
def probe_jpeg() -> bytes:
    """Return a small JPEG of a red square on a white background (CPU work: call off the event loop)."""
    image = Image.new("RGB", (PROBE_SIZE, PROBE_SIZE), "white")
    ImageDraw.Draw(image).rectangle((28, 28, 83, 83), fill=(220, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def probe_request() -> VisionRequest:
    """Return the probe request (builds the JPEG on first use: call off the event loop)."""
    return VisionRequest(
        system_prompt=PROBE_SYSTEM_PROMPT,
        frames=(probe_jpeg(),),
        question=PROBE_QUESTION,
        json_schema=PROBE_SCHEMA,
        max_tokens=64,
    )


def check_probe_reply(reply: VisionReply) -> dict[str, Any]:
    """Return the parsed probe answer; raise ReplyParseError when the model's reply is not understood."""
    return parse_reply(reply.text, PROBE_SCHEMA)
