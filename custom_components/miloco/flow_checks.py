"""Checks the config flow runs before it saves a backend: model listing, a real probe, model files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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


def _inspect(path: Path) -> tuple[GgufInfo | None, str | None]:
    """Return a model file's header, or the error key saying why it cannot serve (blocking)."""
    try:
        return inspect_gguf(path), None
    except (FileNotFoundError, IsADirectoryError):
        return None, "file_not_found"
    except NotGguf:
        return None, "not_gguf"
    except GgufTruncated:
        return None, "corrupt_model"
    except GgufUnsupported:
        return None, "unsupported_gguf"
    except (GgufError, OSError):
        return None, "file_unreadable"


@dataclass(frozen=True, slots=True)
class ModelFilesCheck:
    """What the headers of a model pair say: per-field error keys, and whether it is our test model."""

    errors: dict[str, str]
    test_model: bool = False


def check_model_files(model: Path, mmproj: Path) -> ModelFilesCheck:
    """Check the model pair by reading only the file headers (blocking).

    Runs before every load, not only in the flow: files change, and llama.cpp crashes the whole process
    on some malformed projectors instead of failing.
    """
    errors: dict[str, str] = {}
    model_info, error = _inspect(model)
    if error is not None:
        errors[CONF_MODEL_PATH] = error
    mmproj_info, error = _inspect(mmproj)
    if error is not None:
        errors[CONF_MMPROJ_PATH] = error
    if model_info is not None and CONF_MODEL_PATH not in errors:
        try:
            require_text_model(model_info)
        except NotTextModel:
            errors[CONF_MODEL_PATH] = "not_text_model"
    if mmproj_info is not None and CONF_MMPROJ_PATH not in errors:
        try:
            require_vision_projector(mmproj_info)
            if model_info is not None:
                require_matching_pair(model_info, mmproj_info)
        except NotVisionProjector:
            errors[CONF_MMPROJ_PATH] = "not_mmproj"
        except ProjectorMismatch:
            errors[CONF_MMPROJ_PATH] = "pair_mismatch"
    test_model = model_info is not None and model_info.metadata.get(TEST_MODEL_KEY) is True
    return ModelFilesCheck(errors, test_model)


async def async_check_embedded(hass: HomeAssistant, data: Mapping[str, Any]) -> ModelFilesCheck:
    """Check paths, file headers and the llama-cpp-python runtime."""
    paths = {CONF_MODEL_PATH: Path(data[CONF_MODEL_PATH]), CONF_MMPROJ_PATH: Path(data[CONF_MMPROJ_PATH])}
    errors = {
        field: "path_not_allowed"
        for field, path in paths.items()
        if not path.is_absolute() or not hass.config.is_allowed_path(str(path))
    }
    if errors:
        return ModelFilesCheck(errors)
    check = await hass.async_add_executor_job(
        check_model_files, paths[CONF_MODEL_PATH], paths[CONF_MMPROJ_PATH]
    )
    if check.errors:
        return check
    try:
        # In a child process: a wheel built for another CPU dies of SIGILL there, not in HA.
        await async_probe_runtime()
    except RuntimeMissing as err:
        return ModelFilesCheck({"base": err.reason})
    return check
