"""Constants of the Miloco integration: domain, configuration keys and defaults."""

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

# Embedded (llama-cpp-python) backend.
CONF_MODEL_PATH: Final = "model_path"
CONF_MMPROJ_PATH: Final = "mmproj_path"
CONF_THREADS: Final = "threads"
CONF_CONTEXT_SIZE: Final = "context_size"

DEFAULT_TIMEOUT: Final = 30
# CPU inference of a 7B model over six frames takes tens of seconds on small machines.
DEFAULT_EMBEDDED_TIMEOUT: Final = 180
MIN_TIMEOUT: Final = 5
MAX_TIMEOUT: Final = 300
DEFAULT_MAX_CONCURRENT: Final = 2
DEFAULT_CONTEXT_SIZE: Final = 8192
# Six 448-px frames alone are about 1,500 image tokens; below 4096 a check hardly fits.
MIN_CONTEXT_SIZE: Final = 4096
MAX_CONTEXT_SIZE: Final = 131072
MAX_THREADS: Final = 64
MAX_CONCURRENT_LIMIT: Final = 16

# The documented install route for the optional embedded runtime (no PyPI wheels exist).
LLAMA_CPP_INSTALL_HINT: Final = "pip install llama-cpp-python==0.3.36"
