"""The brand icon: the right format, a clean background, and exactly what scripts/make_icon.py draws."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from types import ModuleType

from PIL import Image
import pytest

REPO = Path(__file__).resolve().parent.parent
BRAND = REPO / "custom_components" / "miloco" / "brand"
SCRIPT = REPO / "scripts" / "make_icon.py"
SIZES = {"icon.png": 256, "icon@2x.png": 512}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _load_script() -> ModuleType:
    """Import scripts/make_icon.py by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("miloco_make_icon", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _open(name: str) -> Image.Image:
    data = (BRAND / name).read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("name", "size"), SIZES.items())
def test_icon_is_a_square_rgba_png(name: str, size: int) -> None:
    image = _open(name)
    assert image.format == "PNG"
    assert image.mode == "RGBA"
    assert image.size == (size, size)
    # No text chunks: the file carries pixels only, so that reruns give the same bytes.
    assert not getattr(image, "text", {})


@pytest.mark.parametrize("name", SIZES)
def test_icon_has_transparent_corners(name: str) -> None:
    image = _open(name)
    edge = image.width // 32
    alpha = image.getchannel("A")
    for left, top in [(0, 0), (image.width - edge, 0), (0, image.height - edge), (image.width - edge,) * 2]:
        assert alpha.crop((left, top, left + edge, top + edge)).getextrema() == (0, 0)


def test_icon_has_real_content() -> None:
    image = _open("icon.png")
    alpha = image.getchannel("A").histogram()
    assert 0.2 < alpha[255] / (image.width * image.height) < 0.9
    colors = image.getcolors(maxcolors=image.width * image.height)
    assert colors is not None
    assert len(colors) > 50
    # Anti-aliased edges: some pixels are partly transparent.
    assert sum(alpha[1:255]) > 0


@pytest.mark.parametrize(("name", "size"), SIZES.items())
def test_script_reproduces_the_committed_icon(name: str, size: int) -> None:
    script = _load_script()
    drawn = script.draw_icon(size)
    committed = _open(name)
    # Compare pixels first for a readable failure, then the exact bytes the script would write.
    assert drawn.tobytes() == committed.tobytes(), f"{name} is stale: run scripts/make_icon.py"
    assert script.render(size) == (BRAND / name).read_bytes()
