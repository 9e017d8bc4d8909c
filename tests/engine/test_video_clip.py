"""A video file as a clip (no Home Assistant): frames spread evenly from first to last, in order, or a clear error."""

from __future__ import annotations

import io

import av
from PIL import Image
import pytest

from custom_components.miloco.engine.video_clip import VideoClipError, clip_from_video


def _video(shades: list[int], *, container_format: str, codec: str, rate: int = 4) -> bytes:
    """Return a video of grey frames of the given shades, at `rate` frames per second."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 1_000_000
        for shade in shades:
            container.mux(stream.encode(av.VideoFrame.from_image(Image.new("RGB", (64, 48), (shade,) * 3))))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _shade(jpeg: bytes) -> int:
    with Image.open(io.BytesIO(jpeg)) as image:
        value = image.convert("L").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert isinstance(value, int)
    return value


SHADES = [index * 20 for index in range(12)]


def test_a_longer_video_gives_frames_spread_from_its_first_to_its_last() -> None:
    clip = clip_from_video(_video(SHADES, container_format="mp4", codec="mpeg4"), 6)
    assert len(clip) == 6
    # 12 frames at 4 per second span 2.75 s: targets every 0.55 s pick frames 0, 3 (0.75 s), 5, 7, 9, 11.
    picked = [min(SHADES, key=lambda shade, frame=frame: abs(shade - _shade(frame.jpeg))) for frame in clip]
    assert picked == [0, 60, 100, 140, 180, 220]
    times = [frame.timestamp for frame in clip]
    assert times[0] == 0.0
    assert times == sorted(times)
    assert times[-1] == pytest.approx(2.75, abs=0.01)


def test_a_short_video_gives_each_of_its_frames_once() -> None:
    clip = clip_from_video(_video(SHADES[:3], container_format="mp4", codec="mpeg4"), 6)
    assert [round(_shade(frame.jpeg) / 20) * 20 for frame in clip] == SHADES[:3]


def test_a_webm_clip_is_read_too() -> None:
    if "libvpx" not in av.codecs_available:
        pytest.skip("this PyAV build has no VP8 encoder to make a WebM file with")
    clip = clip_from_video(_video(SHADES[:4], container_format="webm", codec="libvpx"), 6)
    assert len(clip) == 4


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x18ftypmp42", b"not a video at all"])
def test_what_is_not_a_video_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(VideoClipError) as raised:
        clip_from_video(data, 6)
    assert raised.value.reason
