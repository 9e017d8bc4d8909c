"""Key frames: the newest frame of the check that fired a gesture or a rule, in memory and (optionally) on disk.

The watcher hands each check's newest frame here; when that check fires something, the frame becomes the camera's
key frame. The "Last detection" image entity shows it, the bus event says where to fetch it, and with saving on
it is written to the media folder, keeping at most `saved_frames_max` files per camera. After a restart or an
edit of the camera, the newest saved file is the key frame again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
import re
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.util import dt as dt_util, slugify

from .const import LOGGER
from .entry_link import StartTask
from .listeners import Listeners

# Saved frames live in the "local" media folder, one sub-folder per camera.
MEDIA_SOURCE_LOCAL: Final = "local"
MEDIA_FOLDER: Final = "miloco"
# Cameras send JPEG mostly, PNG sometimes: each type is served and saved as what it is.
EXTENSIONS: Final = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
# A saved frame's name: the UTC time to the microsecond (so names sort by age), then what it fired.
SAVED_TIME_FORMAT: Final = "%Y%m%d-%H%M%S-%f"
# Only files with this shape are ever pruned or restored: a user's own files in the folder are left alone.
SAVED_NAME: Final = re.compile(r"^(?P<time>\d{8}-\d{6}-\d{6})-(?P<label>[a-z0-9_]+)\.(?:jpg|png|gif|webp)$")

# Event data keys that tell an automation where the frame is.
ATTR_KEY_FRAME_ENTITY: Final = "key_frame_entity_id"
ATTR_KEY_FRAME_PATH: Final = "key_frame_path"
ATTR_KEY_FRAME_MEDIA_ID: Final = "key_frame_media_content_id"
ATTR_KEY_FRAME_URL: Final = "key_frame_url"


def content_type_of(image: bytes) -> str:
    """Return an image's MIME type from its first bytes; JPEG, what cameras send most, when unknown."""
    if image.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if image.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyFrame:
    """One frame that fired something, and what it fired."""

    image: bytes
    content_type: str
    label: str
    taken_at: datetime
    path: Path | None = None


class KeyFrames:
    """One camera's key frame: the newest frame of the last check that fired a gesture or a rule."""

    def __init__(
        self,
        hass: HomeAssistant,
        start_task: StartTask,
        camera_entity_id: str,
        *,
        save: bool,
        keep: int,
    ) -> None:
        """Start with no key frame; saving writes under <media>/miloco/<camera>/ and keeps `keep` files."""
        self.hass = hass
        self._start_task = start_task
        self.camera_entity_id = camera_entity_id
        self.keep = max(1, keep)
        self.folder = _folder(hass, camera_entity_id) if save else None
        # Set by the image entity once it has an entity id.
        self.entity_id: str | None = None
        self.current: KeyFrame | None = None
        self._check_frame: bytes | None = None
        self._listeners: Listeners[()] = Listeners()

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` whenever the key frame changes; return the remover."""
        return self._listeners.add(listener)

    @callback
    def set_check_frame(self, frame: bytes | None) -> None:
        """Remember the newest frame of the check that just ran (the watcher calls this before dispatching)."""
        self._check_frame = frame

    @callback
    def record(self, label: str) -> dict[str, str]:
        """Make the last check's newest frame the key frame; return where it can be fetched, for the event."""
        if self._check_frame is None:
            return {}
        return self.record_image(label, self._check_frame)

    @callback
    def record_image(self, label: str, image: bytes) -> dict[str, str]:
        """Make `image` the key frame (a person's question looked at it); return where it can be fetched."""
        now = dt_util.utcnow()
        content_type = content_type_of(image)
        path = None
        if self.folder is not None:
            name = f"{now.strftime(SAVED_TIME_FORMAT)}-{slugify(label) or 'detection'}"
            path = self.folder / f"{name}.{EXTENSIONS[content_type]}"
        self.current = KeyFrame(image=image, content_type=content_type, label=label, taken_at=now, path=path)
        self._listeners()
        if path is not None:
            self._start_task(self._async_save(path, image), f"miloco save key frame {self.camera_entity_id}")
        return self.reference()

    async def _async_save(self, path: Path, image: bytes) -> None:
        """Write the frame and prune the folder, off the event loop."""
        await self.hass.async_add_executor_job(_save_and_prune, path, image, self.keep)

    async def async_restore(self, rule_titles: Iterable[str] = ()) -> None:
        """Make the newest saved frame the key frame again (after a restart or an edit), unless one is newer.

        `rule_titles` are the entry's rules of now: a file named after one is labelled with its name again.
        """
        if self.folder is None or self.current is not None:
            return
        restored = await self.hass.async_add_executor_job(newest_saved, self.folder)
        # A check may have fired something while the folder was read: that frame is the newer one.
        if restored is None or self.current is not None:
            return
        # A file name carries a rule's name as a slug: shown as the rule's name again while the rule exists.
        label = next((title for title in rule_titles if slugify(title) == restored.label), restored.label)
        self.current = replace(restored, label=label)
        self._listeners()

    def reference(self) -> dict[str, str]:
        """Return the event data that points at the current key frame."""
        data: dict[str, str] = {}
        if self.entity_id is not None:
            data[ATTR_KEY_FRAME_ENTITY] = self.entity_id
        if self.current is not None and self.current.path is not None:
            relative = self.current.path.relative_to(Path(self.hass.config.media_dirs[MEDIA_SOURCE_LOCAL]))
            data[ATTR_KEY_FRAME_PATH] = str(self.current.path)
            data[ATTR_KEY_FRAME_MEDIA_ID] = (
                f"media-source://media_source/{MEDIA_SOURCE_LOCAL}/{relative.as_posix()}"
            )
            # The companion apps fetch /media/local/... with their own credentials.
            data[ATTR_KEY_FRAME_URL] = f"/media/{MEDIA_SOURCE_LOCAL}/{relative.as_posix()}"
        return data


def _folder(hass: HomeAssistant, camera_entity_id: str) -> Path | None:
    """Return the camera's folder in the local media source, or None when there is no such source."""
    root = hass.config.media_dirs.get(MEDIA_SOURCE_LOCAL)
    if root is None:
        LOGGER.warning("No local media folder: key frames of %s are not saved", camera_entity_id)
        return None
    return Path(root) / MEDIA_FOLDER / slugify(camera_entity_id.split(".", 1)[-1])


def _save_and_prune(path: Path, image: bytes, keep: int) -> None:
    """Write the frame, then delete the oldest saved frames beyond `keep` (blocking: runs in the executor)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
        prune(path.parent, keep)
    except OSError as err:
        LOGGER.warning("Cannot save a Miloco key frame in %s: %s", path.parent, err)


def _saved(folder: Path) -> list[Path]:
    """Return the frames Miloco saved in `folder`, oldest first (blocking)."""
    # Names start with the UTC time to the microsecond, so their order is their age.
    return sorted(
        (path for path in folder.iterdir() if SAVED_NAME.match(path.name) and path.is_file()),
        key=lambda path: path.name,
    )


def newest_saved(folder: Path) -> KeyFrame | None:
    """Return the newest frame saved in `folder` as a key frame, or None when there is none (blocking)."""
    try:
        saved = _saved(folder) if folder.is_dir() else []
        if not saved:
            return None
        path = saved[-1]
        image = path.read_bytes()
    except OSError as err:
        LOGGER.warning("Cannot read the saved Miloco key frames in %s: %s", folder, err)
        return None
    if (name := SAVED_NAME.match(path.name)) is None:  # never: _saved keeps only the names that match
        return None
    taken_at = datetime.strptime(name["time"], SAVED_TIME_FORMAT).replace(tzinfo=UTC)
    return KeyFrame(
        image=image, content_type=content_type_of(image), label=name["label"], taken_at=taken_at, path=path
    )


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete the oldest saved frames in `folder` beyond `keep`; return what was deleted (blocking)."""
    saved = _saved(folder)
    stale = saved[: max(0, len(saved) - keep)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
