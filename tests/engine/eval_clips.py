"""A synthetic clip set drawn with Pillow (one clip a PyAV video), and a scripted model that knows its clips.

Every frame is a flat colour: red says which clip it is, green which frame of the clip. The scripted model
reads the newest image of a request, finds the clip, and answers what the clip's script says, so the
confusion counts of a run are known in advance.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
import io
import json
from pathlib import Path
import re
from typing import Any

import av
from PIL import Image, ImageDraw

from custom_components.miloco.engine.labels import ACTIVITIES, GESTURES
from custom_components.miloco.engine.prompt import condition_question
from tests.model_server import Reply

SIZE = (320, 240)
VIDEO_FPS = 10
_RED_BASE, _RED_STEP = 30, 20
_GREEN_BASE, _GREEN_STEP = 10, 20
_CONDITIONS = {condition_question(label.condition): label.key for label in (*GESTURES, *ACTIVITIES)}
_NO_THINK = "/no_think"


@dataclass(frozen=True, kw_only=True)
class SyntheticClip:
    """A clip of the synthetic set: its truth, what the scripted model says about it, and its form."""

    name: str
    gestures: tuple[str, ...] = ()
    activities: tuple[str, ...] = ()
    # What the scripted model answers; None makes it reply with unparsable text.
    said: tuple[str, ...] | None = ()
    form: str = "jpeg"  # jpeg, png or video
    frames: int = 8


# Truth and answers chosen so that every class has at least one clip, and the counts are easy to check by hand.
CLIPS: tuple[SyntheticClip, ...] = (
    SyntheticClip(
        name="c0-thumbs-tv",
        gestures=("thumbs_up",),
        activities=("watch_tv",),
        said=("thumbs_up", "watch_tv"),
        frames=10,
    ),
    SyntheticClip(name="c1-v-reading", gestures=("v_sign",), activities=("reading",), said=("ok", "reading")),
    SyntheticClip(name="c2-palm-phone", gestures=("open_palm",), activities=("phone",), said=("open_palm",)),
    SyntheticClip(
        name="c3-ok-esports", gestures=("ok",), activities=("esports",), said=("ok", "esports", "workout")
    ),
    SyntheticClip(name="c4-shaka-workout", gestures=("shaka",), activities=("workout",), said=("workout",)),
    SyntheticClip(name="c5-wave", gestures=("wave",), said=("wave", "v_sign")),
    SyntheticClip(name="c6-tv-phone", activities=("watch_tv", "phone"), said=("watch_tv",), form="png"),
    SyntheticClip(
        name="c7-video", gestures=("thumbs_up", "v_sign"), said=("thumbs_up", "phone"), form="video"
    ),
)

# The counts of CLIPS, worked out by hand: class -> (TP, FP, FN, TN).
EXPECTED_COUNTS: dict[str, tuple[int, int, int, int]] = {
    "thumbs_up": (2, 0, 0, 6),
    "v_sign": (0, 1, 2, 5),
    "open_palm": (1, 0, 0, 7),
    "ok": (1, 1, 0, 6),
    "shaka": (0, 0, 1, 7),
    "wave": (1, 0, 0, 7),
    "watch_tv": (2, 0, 0, 6),
    "reading": (1, 0, 0, 7),
    "phone": (0, 1, 2, 5),
    "esports": (1, 0, 0, 7),
    "workout": (1, 1, 0, 6),
}


def colour(clip_index: int, frame_index: int) -> tuple[int, int, int]:
    """Return the flat colour of one frame."""
    return (_RED_BASE + _RED_STEP * clip_index, _GREEN_BASE + _GREEN_STEP * frame_index, 128)


def frame_image(clip_index: int, frame_index: int) -> Image.Image:
    """Return one frame: a flat colour with a small skin-coloured 'hand' in a corner, away from the centre."""
    image = Image.new("RGB", SIZE, colour(clip_index, frame_index))
    ImageDraw.Draw(image).ellipse((10 + 4 * frame_index, 10, 60 + 4 * frame_index, 60), fill=(220, 180, 140))
    return image


def write_clip_set(root: Path, clips: tuple[SyntheticClip, ...] = CLIPS, *, manifest: bool = True) -> Path:
    """Write the clips under root (a folder each, labels.json, frames or a video) and the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    for index, clip in enumerate(clips):
        folder = root / clip.name
        folder.mkdir()
        labels: dict[str, Any] = {
            "gestures": list(clip.gestures),
            "activities": list(clip.activities),
            "fps": 2,
        }
        if clip.form == "video":
            write_video(folder / "clip.mp4", index, seconds=clip.frames / 2)
        else:
            for frame in range(clip.frames):
                suffix = "png" if clip.form == "png" else "jpg"
                frame_image(index, frame).save(folder / f"frame{frame}.{suffix}")
        (folder / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    if manifest:
        (root / "manifest.json").write_text(
            json.dumps({"clips": [clip.name for clip in clips]}), encoding="utf-8"
        )
    return root


def write_video(path: Path, clip_index: int, *, seconds: float, fps: int = VIDEO_FPS) -> None:
    """Write an MPEG-4 video of the clip's colour, frame_index 0 throughout."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000
        for _ in range(round(seconds * fps)):
            frame = av.VideoFrame.from_image(frame_image(clip_index, 0))
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def centre_colour(data_url: str) -> tuple[int, int, int]:
    """Return the colour at the centre of a data-URL image."""
    image = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    red, green, blue = image.getpixel((image.width // 2, image.height // 2))  # type: ignore[misc]
    return red, green, blue


@dataclass
class Seen:
    """What the scripted model saw in one request."""

    clip: str
    frame_indices: list[int]
    thinking: bool
    question: str
    system_prompt: str


@dataclass
class ScriptedModel:
    """The responder of the loopback server: answers from the clip's script, in either prompt mode."""

    clips: tuple[SyntheticClip, ...] = CLIPS
    seen: list[Seen] = field(default_factory=list)

    def __call__(self, body: dict[str, Any]) -> Reply:
        """Answer one chat request."""
        system, user = body["messages"]
        content = user["content"]
        colours = [centre_colour(part["image_url"]["url"]) for part in content if part["type"] == "image_url"]
        clip = self.clips[round((colours[-1][0] - _RED_BASE) / _RED_STEP)]
        text: str = content[-1]["text"]
        thinking = not text.endswith(_NO_THINK)
        question = text.removesuffix(_NO_THINK)
        frames = [round((green - _GREEN_BASE) / _GREEN_STEP) for _, green, _ in colours]
        self.seen.append(Seen(clip.name, frames, thinking, question, system["content"]))
        if clip.said is None:
            return Reply(content="I cannot tell what these frames show.")
        if question in _CONDITIONS:
            answer: dict[str, Any] = {"result": "yes" if _CONDITIONS[question] in clip.said else "no"}
        elif question.startswith("Which of the gestures"):
            answer = {
                "gestures": [key for key in clip.said if key in _keys(GESTURES)],
                "activities": [key for key in clip.said if key in _keys(ACTIVITIES)],
                "reason": f"scripted answer for {clip.name}",
            }
        elif question.startswith("Which of the keys hold"):
            # The compact answer format: the same truth, only the keys that hold.
            answer = {"holds": list(clip.said), "reason": f"scripted answer for {clip.name}"}
        else:
            raise AssertionError(f"unexpected question {question!r}")
        reply = json.dumps(answer)
        if thinking:
            # MiMo-VL's thinking form: a chain of thought, then the answer boxed.
            reply = (
                f"<think>The frames are {colours[-1]}, so this is {clip.name}.</think>\n\\boxed{{{reply}}}"
            )
        return Reply(content=reply, usage={"prompt_tokens": 50 + 10 * len(colours), "completion_tokens": 7})


def _keys(labels: Any) -> set[str]:
    return {label.key for label in labels}


def one_line(text: str) -> bool:
    """Return whether stderr holds exactly one line and no traceback."""
    return (
        len(text.strip().splitlines()) == 1
        and "Traceback" not in text
        and bool(re.match(r"scripts/eval( run| convert)?: error: ", text))
    )
