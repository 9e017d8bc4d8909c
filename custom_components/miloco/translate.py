"""The one place where what can go wrong asking the model becomes a translated error for a person."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN
from .engine.backends.errors import BackendError
from .engine.frames import FrameDecodeError
from .engine.parse import ReplyParseError
from .reasons import reason_text


@contextmanager
def translated_errors(hass: HomeAssistant, *, camera: str | None = None) -> Iterator[None]:
    """Raise backend, reply and image errors as translated HomeAssistantErrors.

    `camera` names the camera the images came from; without one they were a person's attachments.
    """
    try:
        yield
    except BackendError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="backend_error",
            translation_placeholders={"reason": reason_text(hass, err)},
        ) from err
    except ReplyParseError as err:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="reply_not_understood") from err
    except FrameDecodeError as err:
        if camera is None:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="attachment_unreadable"
            ) from err
        raise camera_unavailable(camera) from err


def camera_unavailable(camera: str) -> HomeAssistantError:
    """Return the error for a camera that gives no usable image."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="camera_unavailable",
        translation_placeholders={"camera": camera},
    )


def busy(seconds: float) -> HomeAssistantError:
    """Return the error for a question that found no free slot of the model within its wait."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="busy",
        translation_placeholders={"seconds": f"{seconds:g}"},
    )
