"""The rule conditions every benchmark asks about: the in-process phases, the real Home Assistant and llama.cpp."""

from __future__ import annotations

from typing import Final

# The rules a benchmark camera may carry, in order: the first R of them. Only the first two can come true in the
# scenes (the magenta card, the orange shirt); the others are there to be asked about.
RULE_CONDITIONS: Final = (
    "someone shows a thumbs-up to the camera",
    "someone walks across the room",
    "a dog is lying on the sofa",
    "the front door is open",
    "smoke is visible in the room",
    "a package lies on the floor",
    "someone is lying on the floor",
    "a cat sits on the table",
    "the window blinds are closed",
    "someone is cooking at the stove",
)
