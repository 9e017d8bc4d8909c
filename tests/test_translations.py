"""Every error, abort, exception and issue key the integration uses has an English text, in both files.

strings.json may refer to its own texts with [%key:component::miloco::…%]; translations/en.json holds them
resolved (scripts/make_translations.py writes it), because Home Assistant shows a custom integration's
translation files as they are.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from custom_components.miloco.engine.backends import errors as backend_errors
from custom_components.miloco.engine.condition_text import MAX_CONDITION_CHARS, condition_problem

from .strings_files import ENGLISH, PACKAGE, STRINGS, make_translations

CONFIG_ERRORS = STRINGS["config"]["error"]
CAMERA_ERRORS = STRINGS["config_subentries"]["camera"]["error"]
RULE_ERRORS = STRINGS["config_subentries"]["rule"]["error"]
ERROR_SECTIONS = {
    "config_flow.py": CONFIG_ERRORS,
    "flow_checks.py": CONFIG_ERRORS,
    "fallback_servers.py": CONFIG_ERRORS,
    "server_keys.py": CONFIG_ERRORS,
    "camera_flow.py": CAMERA_ERRORS,
    "rule_flow.py": RULE_ERRORS,
}


def _source(name: str) -> str:
    return (PACKAGE / name).read_text(encoding="utf-8")


def _found(pattern: str, name: str) -> set[str]:
    return set(re.findall(pattern, _source(name)))


def _missing(keys: set[str], texts: dict[str, Any]) -> set[str]:
    return {key for key in keys if key not in texts}


def _backend_reasons() -> dict[type[backend_errors.BackendError], str]:
    """Return every backend error class with the key the flows and setup show for it."""
    found: dict[type[backend_errors.BackendError], str] = {}
    pending: list[type[backend_errors.BackendError]] = [backend_errors.BackendError]
    while pending:
        cls = pending.pop()
        found[cls] = cls.reason
        pending.extend(cls.__subclasses__())
    return found


def test_english_translation_is_the_strings_file() -> None:
    assert make_translations().resolved(STRINGS) == ENGLISH
    # Home Assistant does not resolve references in a custom integration: none may reach the UI.
    assert "[%key:" not in json.dumps(ENGLISH)


def _leaves(node: dict[str, Any], path: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """Return every text under a node, by its path of keys."""
    leaves: dict[tuple[str, ...], str] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, (*path, key)))
        else:
            leaves[(*path, key)] = value
    return leaves


@pytest.mark.parametrize("name", sorted(STRINGS["config_subentries"]))
def test_a_change_form_repeats_the_add_form_by_reference(name: str) -> None:
    """The change form's labels and help texts are the add form's, by reference, so they cannot drift apart."""
    steps = STRINGS["config_subentries"][name]["step"]
    shared = ("data", "data_description", "sections")
    leaves = _leaves({key: value for key, value in steps["reconfigure"].items() if key in shared})
    assert (
        leaves.keys() == _leaves({key: value for key, value in steps["user"].items() if key in shared}).keys()
    )
    for path, text in leaves.items():
        assert text == f"[%key:component::miloco::config_subentries::{name}::step::user::{'::'.join(path)}%]"


@pytest.mark.parametrize(
    ("strings", "problem"),
    [
        ({"a": "[%key:component::miloco::b%]"}, "no such text"),
        ({"a": "[%key:common::config_flow::data::name%]"}, "only component::miloco::"),
        ({"a": "[%key:component::miloco::a%]"}, "refers back to itself"),
        ({"a": "[%key:component::miloco::b%]", "b": {"c": "x"}}, "names a group"),
    ],
)
def test_bad_references_are_refused(strings: dict[str, Any], problem: str) -> None:
    module = make_translations()
    with pytest.raises(module.ReferenceError_, match=problem):
        module.resolved(strings)


def test_references_nest_and_keep_the_text_around_them() -> None:
    strings = {"a": "A", "b": "[%key:component::miloco::a%]!", "c": {"d": "<[%key:component::miloco::b%]>"}}
    assert make_translations().resolved(strings) == {"a": "A", "b": "A!", "c": {"d": "<A!>"}}


@pytest.mark.parametrize("name", sorted(ERROR_SECTIONS))
def test_form_errors_set_in_code_are_translated(name: str) -> None:
    keys = _found(r'errors\[[^\]]+\] = "([a-z_]+)"', name)
    # Errors returned as a one-field dict: {CONF_CAMERA: "camera_not_found"}.
    keys |= _found(r'\{\s*[A-Za-z_"]+:\s*"([a-z_]+)"\s*\}', name)
    keys |= _found(r'return None, "([a-z_]+)"', name)
    assert keys
    assert not _missing(keys, ERROR_SECTIONS[name])


def test_model_file_errors_are_translated() -> None:
    keys = _found(r'return None, "([a-z_]+)"', "flow_checks.py") | _found(
        r'errors\[[^\]]+\] = "([a-z_]+)"', "flow_checks.py"
    )
    assert {"pair_mismatch", "not_regular_file", "path_not_allowed"} <= keys
    assert not _missing(keys, CONFIG_ERRORS)


def test_settings_table_errors_are_translated() -> None:
    from custom_components.miloco import settings

    backend = {settings.REMOTE_TIMEOUT, settings.EMBEDDED_TIMEOUT, settings.MAX_CONCURRENT}
    backend |= {settings.THREADS, settings.CONTEXT_SIZE}
    sections = [(backend, CONFIG_ERRORS), (settings.CAMERA_SETTINGS, CAMERA_ERRORS)]
    sections.append((settings.RULE_SETTINGS, RULE_ERRORS))
    for table, texts in sections:
        for setting in table:
            if isinstance(setting, settings.NumberSetting):
                assert setting.error in texts, setting.key
    # Text fields live in the backend flow and the rule flow.
    for texts in (CONFIG_ERRORS, RULE_ERRORS):
        assert {"invalid_text", "text_too_long"} <= texts.keys()


def test_bound_placeholders_match_the_table() -> None:
    """Each {key_min}/{key_max} in an error text names a number setting the form supplies."""
    from custom_components.miloco import settings

    numbers = [
        setting
        for setting in (*settings.CAMERA_SETTINGS, *settings.RULE_SETTINGS)
        if isinstance(setting, settings.NumberSetting)
    ]
    numbers += [settings.REMOTE_TIMEOUT, settings.MAX_CONCURRENT, settings.THREADS, settings.CONTEXT_SIZE]
    known = set(settings.placeholders(numbers))
    for texts in (CONFIG_ERRORS, CAMERA_ERRORS, RULE_ERRORS):
        for text in texts.values():
            for name in re.findall(r"\{([a-z_]+_(?:min|max))\}", text):
                assert name in known, name


def test_condition_problems_are_translated() -> None:
    problems = {condition_problem(text) for text in ("", "x" * (MAX_CONDITION_CHARS + 1), "detected a dog")}
    assert problems == {"empty", "too_long", "past_event"}
    assert not _missing({f"condition_{problem}" for problem in problems}, RULE_ERRORS)


def test_backend_reasons_shown_by_the_flows_are_translated() -> None:
    reasons = _backend_reasons()
    # A flow makes a fresh client and never loads a model: these two cannot reach its form.
    never_in_a_flow = {backend_errors.ModelLoadError, backend_errors.BackendClosed}
    flow_keys = {reason for cls, reason in reasons.items() if cls not in never_in_a_flow}
    assert not _missing(flow_keys, CONFIG_ERRORS)
    runtime = {reason for cls, reason in reasons.items() if issubclass(cls, backend_errors.RuntimeMissing)}
    runtime.add(backend_errors.ModelLoadError.reason)
    assert not _missing(runtime, STRINGS["issues"])
    assert not _missing(runtime, STRINGS["exceptions"])


def test_aborts_are_translated() -> None:
    keys = _found(r'async_abort\(reason="([a-z_]+)"\)', "config_flow.py")
    keys |= _found(r'_async_save\(\s*[^,]+,\s*"([a-z_]+)"', "config_flow.py")
    assert {"already_configured", "reconfigure_successful", "reauth_successful"} <= keys
    assert not _missing(keys, STRINGS["config"]["abort"])
    # Subentry flows finish a change with async_update_and_abort's default reason.
    for subentry in STRINGS["config_subentries"].values():
        assert "reconfigure_successful" in subentry["abort"]


@pytest.mark.parametrize("name", ["__init__.py", "services.py"])
def test_exception_keys_are_translated(name: str) -> None:
    keys = _found(r'translation_key="([a-z_]+)"', name)
    assert keys
    assert not _missing(keys, STRINGS["exceptions"])


def test_issue_keys_are_translated() -> None:
    keys = _found(r'_raise_load_issue\(\s*hass,\s*entry,\s*"([a-z_]+)"', "__init__.py")
    keys |= _found(r'translation_key="([a-z_]+)"', "health.py")
    assert {"path_not_allowed", "load_failed", "backend_failing"} <= keys
    assert not _missing(keys, STRINGS["issues"])
    assert not _missing(keys - {"backend_failing"}, STRINGS["exceptions"])
