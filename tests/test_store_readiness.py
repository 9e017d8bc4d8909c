"""What the HACS store checks before it lists the repository: the licence, hacs.json and the manifest."""

from __future__ import annotations

import json
from pathlib import Path
import re
import tomllib
from typing import Any

from awesomeversion import AwesomeVersion
import pytest
from yarl import URL

REPO = Path(__file__).resolve().parent.parent
INTEGRATION = REPO / "custom_components" / "miloco"

# hacs.json keys HACS documents (hacs.xyz, "Publish: General"); HACS refuses any other key.
HACS_KEYS = {
    "name",
    "content_in_root",
    "zip_release",
    "filename",
    "hide_default_branch",
    "country",
    "homeassistant",
    "hacs",
    "persistent_directory",
}
HACS_BOOLEANS = {"content_in_root", "zip_release", "hide_default_branch"}
HACS_STRINGS = {"name", "filename", "homeassistant", "hacs", "persistent_directory"}
# What HACS requires of a custom integration's manifest, plus what this integration relies on.
MANIFEST_REQUIRED = {"domain", "name", "version", "documentation", "issue_tracker", "codeowners"}
MANIFEST_OURS = {"integration_type", "iot_class", "config_flow"}
IOT_CLASSES = {
    "assumed_state",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
    "calculated",
}
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system", "virtual"}


def _json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def hacs() -> dict[str, Any]:
    return _json(REPO / "hacs.json")


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return _json(INTEGRATION / "manifest.json")


def test_licence_is_the_apache_2_text_pyproject_names() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    # The whole text, not a stub: all nine sections and the end marker.
    for section in range(1, 10):
        assert re.search(rf"^\s*{section}\. [A-Z]", text, re.MULTILINE), section
    assert "END OF TERMS AND CONDITIONS" in text


def test_hacs_json_uses_only_documented_keys(hacs: dict[str, Any]) -> None:
    assert set(hacs) <= HACS_KEYS, set(hacs) - HACS_KEYS
    assert isinstance(hacs["name"], str)
    assert hacs["name"]
    for key in HACS_BOOLEANS & set(hacs):
        assert isinstance(hacs[key], bool), key
    for key in HACS_STRINGS & set(hacs):
        assert isinstance(hacs[key], str), key


def test_hacs_minimum_home_assistant_is_the_supported_floor(hacs: dict[str, Any]) -> None:
    # Config subentries and _get_entry() in subentry flows need 2025.4: HACS must not offer it to older ones.
    assert AwesomeVersion(hacs["homeassistant"]) == AwesomeVersion("2025.4.0")


def test_content_lives_where_hacs_looks(hacs: dict[str, Any], manifest: dict[str, Any]) -> None:
    # Without content_in_root HACS installs exactly one directory under custom_components/.
    assert not hacs.get("content_in_root", False)
    assert [
        path.name
        for path in (REPO / "custom_components").iterdir()
        if path.is_dir() and (path / "manifest.json").exists()
    ] == [manifest["domain"]]


def test_manifest_has_what_hacs_requires(manifest: dict[str, Any]) -> None:
    missing = (MANIFEST_REQUIRED | MANIFEST_OURS) - set(manifest)
    assert not missing, missing
    assert manifest["domain"] == INTEGRATION.name
    assert isinstance(manifest["name"], str)
    assert manifest["name"]
    # HACS compares versions with AwesomeVersion: it must be a real version, not a placeholder.
    assert AwesomeVersion(manifest["version"]).valid
    assert AwesomeVersion(manifest["version"]).strategy != "unknown"
    for key in ("documentation", "issue_tracker"):
        url = URL(manifest[key])
        assert url.scheme == "https", key
        assert url.host, key
    assert isinstance(manifest["codeowners"], list)
    assert manifest["codeowners"]
    assert all(owner.startswith("@") for owner in manifest["codeowners"])
    assert manifest["config_flow"] is True
    assert manifest["iot_class"] in IOT_CLASSES
    assert manifest["integration_type"] in INTEGRATION_TYPES


def test_manifest_names_no_hard_dependency_on_the_optional_runtime(manifest: dict[str, Any]) -> None:
    # llama-cpp-python has no wheels on PyPI: a requirement would make HA fail to install the integration.
    assert not any("llama" in requirement for requirement in manifest.get("requirements", []))
