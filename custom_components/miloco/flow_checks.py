"""Checks the config flow runs before it saves a backend: model listing, a real probe, model files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
import stat
from typing import Any

from homeassistant.core import HomeAssistant

from .backend import create_remote_backend
from .const import CONF_MMPROJ_PATH, CONF_MODEL_PATH, LOGGER, TEST_MODEL_KEY
from .engine.backends.errors import BackendError, RuntimeMissing
from .engine.backends.llama_cpp import async_probe_runtime
from .engine.gguf import (
    GgufError,
    GgufInfo,
    GgufTruncated,
    GgufUnsupported,
    NotGguf,
    NotTextModel,
    NotVisionProjector,
    ProjectorMismatch,
    inspect_gguf,
    require_matching_pair,
    require_text_model,
    require_vision_projector,
)
from .engine.parse import ReplyParseError
from .engine.probe import check_probe_reply, probe_request


async def async_list_remote_models(hass: HomeAssistant, data: Mapping[str, Any]) -> list[str]:
    """Return the models the server lists; raise BackendError when it cannot be reached or refuses us."""
    try:
        return await create_remote_backend(hass, data).async_list_models()
    except BackendError:
        raise
    except Exception as err:
        # A flow must answer with its "unknown" error, not crash; the log keeps the traceback.
        LOGGER.exception("Unexpected error while listing the models")
        raise BackendError("unexpected error") from err


async def async_probe_remote(hass: HomeAssistant, data: Mapping[str, Any]) -> str | None:
    """Send one small real image to the model; return an error key, or None when it answered in JSON."""
    backend = create_remote_backend(hass, data)
    request = await hass.async_add_executor_job(probe_request)
    try:
        reply = await backend.async_complete(request)
        check_probe_reply(reply)
    except BackendError as err:
        LOGGER.debug("Probe of %s failed: %s", data.get("model"), err.reason)
        return err.reason
    except ReplyParseError:
        LOGGER.debug("Probe reply of %s was not understood", data.get("model"))
        return "bad_reply"
    except Exception:
        LOGGER.exception("Unexpected error while probing %s", data.get("model"))
        return "unknown"
    finally:
        await backend.async_close()
    return None


# The form error of each way a model file can fail to be read, most specific first.
_FILE_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (FileNotFoundError, "file_not_found"),
    (NotGguf, "not_gguf"),
    (GgufTruncated, "corrupt_model"),
    (GgufUnsupported, "unsupported_gguf"),
    (Exception, "file_unreadable"),
)


def _inspect(path: Path) -> tuple[GgufInfo | None, str | None, str | None]:
    """Return a model file's header, or the error key and the reason it cannot serve (blocking).

    Only a regular file is opened: opening a FIFO would block the worker thread until a writer comes.
    """
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None, "not_regular_file", f"{path} is not a regular file"
        return inspect_gguf(path), None, None
    except (GgufError, OSError, ValueError) as err:
        key = next(key for kind, key in _FILE_ERRORS if isinstance(err, kind))
        return None, key, f"{path}: {err}"


@dataclass(frozen=True, slots=True)
class ModelFilesCheck:
    """What the checks of a model pair found: per-field error keys, a readable reason, and the test-model mark."""

    errors: dict[str, str]
    test_model: bool = False
    reason: str | None = None


def check_model_files(model: Path, mmproj: Path) -> ModelFilesCheck:
    """Check the model pair by reading only the file headers (blocking)."""
    errors: dict[str, str] = {}
    reasons: list[str] = []
    model_info, error, reason = _inspect(model)
    if error is not None:
        errors[CONF_MODEL_PATH] = error
        reasons.append(reason or error)
    mmproj_info, error, reason = _inspect(mmproj)
    if error is not None:
        errors[CONF_MMPROJ_PATH] = error
        reasons.append(reason or error)
    if model_info is not None:
        try:
            require_text_model(model_info)
        except NotTextModel as err:
            errors[CONF_MODEL_PATH] = "not_text_model"
            reasons.append(str(err))
    if mmproj_info is not None:
        try:
            require_vision_projector(mmproj_info)
            if model_info is not None:
                require_matching_pair(model_info, mmproj_info)
        except NotVisionProjector as err:
            errors[CONF_MMPROJ_PATH] = "not_mmproj"
            reasons.append(str(err))
        except ProjectorMismatch as err:
            errors[CONF_MMPROJ_PATH] = "pair_mismatch"
            reasons.append(str(err))
    test_model = model_info is not None and model_info.metadata.get(TEST_MODEL_KEY) is True
    return ModelFilesCheck(errors, test_model, "; ".join(reasons) or None)


def _path_allowed(hass: HomeAssistant, path: str) -> bool:
    """Return whether Home Assistant may read the path (blocking: it resolves symbolic links)."""
    try:
        return Path(path).is_absolute() and hass.config.is_allowed_path(path)
    except (OSError, TypeError, ValueError):
        # A NUL byte, a non-text or an impossible path from hand-edited data: not a path HA may read.
        return False


async def async_check_model_files(hass: HomeAssistant, model_path: str, mmproj_path: str) -> ModelFilesCheck:
    """Check an embedded model pair before the flow saves it and before every load.

    Paths must be allowed, the files regular GGUF files that belong together, and llama-cpp-python must
    import in a child process. Files change after the flow checked them, and llama.cpp crashes the whole
    process on some malformed projectors instead of failing, so setup runs this again each time.
    """
    paths = {CONF_MODEL_PATH: model_path, CONF_MMPROJ_PATH: mmproj_path}
    errors: dict[str, str] = {}
    for field, path in paths.items():
        if not await hass.async_add_executor_job(_path_allowed, hass, path):
            errors[field] = "path_not_allowed"
    if errors:
        return ModelFilesCheck(errors, reason=", ".join(str(paths[field]) for field in errors))
    check = await hass.async_add_executor_job(check_model_files, Path(model_path), Path(mmproj_path))
    if check.errors:
        return check
    try:
        # In a child process: a wheel built for another CPU dies of SIGILL there, not in HA.
        await async_probe_runtime()
    except RuntimeMissing as err:
        return ModelFilesCheck({"base": err.reason}, check.test_model, str(err))
    return check
