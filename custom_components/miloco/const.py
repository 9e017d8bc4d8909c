"""Constants of the Miloco integration: domain and configuration keys (defaults and bounds: settings.py)."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "miloco"
LOGGER = logging.getLogger(__package__)

# Entry data: which kind of backend this entry is.
CONF_BACKEND: Final = "backend"
BACKEND_REMOTE: Final = "remote"
BACKEND_EMBEDDED: Final = "embedded"

# Remote (OpenAI-compatible) backend.
CONF_URL: Final = "url"
CONF_API_KEY: Final = "api_key"
CONF_MODEL: Final = "model"
CONF_VERIFY_SSL: Final = "verify_ssl"
CONF_TIMEOUT: Final = "timeout"
CONF_MAX_CONCURRENT: Final = "max_concurrent"
# Further servers tried in order when the first fails: a list of dicts with the URL, key, model and TLS keys.
CONF_FALLBACKS: Final = "fallbacks"

# Embedded (llama-cpp-python) backend.
CONF_MODEL_PATH: Final = "model_path"
CONF_MMPROJ_PATH: Final = "mmproj_path"
CONF_THREADS: Final = "threads"
CONF_CONTEXT_SIZE: Final = "context_size"


# GGUF metadata key that marks scripts/make_tiny_vlm.py's random-weight test model.
TEST_MODEL_KEY: Final = "miloco.test_model"
TEST_MODEL_TITLE_SUFFIX: Final = " (test model: random weights, meaningless answers)"

# scripts/develop offers the tiny test pair as the embedded default through these variables.
ENV_DEFAULT_MODEL_PATH: Final = "MILOCO_DEFAULT_MODEL_PATH"
ENV_DEFAULT_MMPROJ_PATH: Final = "MILOCO_DEFAULT_MMPROJ_PATH"

# The documented install route for the optional embedded runtime (no PyPI wheels exist).
LLAMA_CPP_INSTALL_HINT: Final = "pip install llama-cpp-python==0.3.36"

# Camera subentries: a watched camera and what to detect on it.
SUBENTRY_CAMERA: Final = "camera"
CONF_CAMERA: Final = "camera_entity_id"
CONF_GESTURES: Final = "gestures"
CONF_ACTIVITIES: Final = "activities"
CONF_PRESENCE: Final = "presence"
CONF_CAPTURE_MODE: Final = "capture_mode"
CAPTURE_SNAPSHOT: Final = "snapshot"
CAPTURE_STREAM: Final = "stream"
CONF_FPS: Final = "fps"
CONF_WINDOW_FRAMES: Final = "window_frames"
CONF_CHECK_INTERVAL: Final = "check_interval"
CONF_DETAIL: Final = "detail"
CONF_CHANGE_THRESHOLD: Final = "change_threshold"
CONF_MOTION_ENTITY: Final = "motion_entity_id"
CONF_HEARTBEAT: Final = "heartbeat"
CONF_HOLD_TIME: Final = "hold_time"
CONF_PROMPT_MODE: Final = "prompt_mode"
PROMPT_COMBINED: Final = "combined"
PROMPT_PER_CONDITION: Final = "per_condition"
# The P(yes), in percent, at which a gesture, activity or presence counts as seen (empty: the model's yes/no).
CONF_LABEL_THRESHOLD: Final = "label_threshold"


# Failure handling: entities go unavailable after this many failed checks or captures in a row, and
# the backend raises a repair issue once it has failed for this long without a single success.
FAILURES_BEFORE_UNAVAILABLE: Final = 3
BACKEND_ISSUE_AFTER_S: Final = 300.0
SNAPSHOT_TIMEOUT: Final = 10

EVENT_MILOCO: Final = "miloco_event"

# Rule subentries: a natural-language condition on one or more cameras, and what happens when it holds.
SUBENTRY_RULE: Final = "rule"
CONF_RULE_NAME: Final = "name"
CONF_PRESET: Final = "preset"
PRESET_CUSTOM: Final = "custom"
CONF_CONDITION: Final = "condition"
CONF_CAMERAS: Final = "cameras"
CONF_MODE: Final = "mode"
MODE_EVENT: Final = "event"
MODE_STATE: Final = "state"
CONF_COOLDOWN: Final = "cooldown"
CONF_ON_CHECKS: Final = "on_checks"
CONF_OFF_DELAY: Final = "off_delay"
CONF_HA_CONDITION: Final = "ha_condition"
CONF_ACTION: Final = "action"
CONF_ENABLED: Final = "enabled"
# The P(yes), in percent, at which the rule's condition holds (empty: the model's yes/no).
CONF_THRESHOLD: Final = "threshold"

# AI Task (HA 2025.8+): the subentry type core's AI integrations use for their AI Task entity.
SUBENTRY_AI_TASK: Final = "ai_task_data"
# Key frames: keep the frames of the checks that fired in the media folder, and how many per camera.
CONF_SAVE_FRAMES: Final = "save_frames"
CONF_SPARE_SLOTS: Final = "spare_slots"
CONF_SAVED_FRAMES_MAX: Final = "saved_frames_max"
