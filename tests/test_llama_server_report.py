"""results.md's llama-server section, rendered from a section record (the bench itself needs the real server)."""

from __future__ import annotations

from typing import Any

from benchmarks.llama_server_bench import report_lines


def _section(planned_server_tokens: int = 180) -> dict[str, Any]:
    """Return a section record shaped as async_bench writes it."""
    return {
        "where": "rootfs",
        "version": "0.7.0 (build 11669, commit Debian)",
        "window": [[504, 280], [196, 112]],
        "window_tokens_ours": 208,
        "image_tokens": [
            # What a frame added to the prompt: its tokens plus the two vision markers.
            {
                "source": "1280×720, medium detail",
                "size": [504, 280],
                "ours": 180,
                "server_added": planned_server_tokens + 2,
            },
            {"source": "small", "size": [84, 56], "ours": 6, "server_added": 14},
        ],
        "image_tokens_min_1024": [
            {"source": "1280×720, medium detail", "size": [504, 280], "ours": 180, "server_added": 1034},
        ],
        "log_default": [
            "load_hparams: if you encounter problems with accuracy, try adding --image-min-tokens 1024"
        ],
        "cache": [
            {
                "rules": 5,
                "order": "frames, then question (ours)",
                "check": check,
                "prompt_tokens": 1119,
                "evaluated": evaluated,
                "cached": 1119 - evaluated,
                "completion_tokens": 60,
                "prompt_ms": 600.0,
                "wall_s": 0.9,
            }
            for check, evaluated in enumerate((900, 800, 820))
        ],
        "modes": [
            {
                "cache": cache,
                "rules": 5,
                "mode": "per_condition",
                "check": check,
                "requests": 5,
                "prompt_tokens": 3726,
                "evaluated": evaluated,
                "cached": 3726 - evaluated,
                "completion_tokens": 65,
                "prompt_ms": 631.0,
                "wall_s": 0.97,
            }
            for cache, check, evaluated in ((True, 0, 1500), (True, 1, 712), (False, 0, 3726))
        ],
    }


def test_section_compares_the_servers_image_tokens_with_ours() -> None:
    text = "\n".join(report_lines(_section()))
    assert "| 504×280 | 1280×720, medium detail | 180 | 180 | 1032 |" in text
    assert "Every planned size costs exactly what our arithmetic says" in text
    # Below the planner's sizes the server's own floor shows, and the section names it.
    assert "84×56 costs 12 (ours 6)" in text
    assert (
        "`load_hparams: if you encounter problems with accuracy, try adding --image-min-tokens 1024`" in text
    )


def test_section_says_when_the_server_upscales_a_planned_frame() -> None:
    text = "\n".join(report_lines(_section(planned_server_tokens=190)))
    assert "Some planned sizes cost more than our arithmetic says" in text
    assert "| 504×280 | 1280×720, medium detail | 180 | 190 |" in text


def test_section_reports_steady_cache_reuse_and_the_steady_check_per_mode() -> None:
    lines = report_lines(_section())
    # Steady state: the mean of the checks after the first ((800 + 820) / 2 evaluated).
    assert "| 5 | frames, then question (ours) | 1119 | 907 | 900 | 810 | 309 |" in lines
    # With the cache, the second check; without it, the only one.
    assert "| True | 5 | per_condition | 5 | 3,726 | 712 | 3,014 | 65 | 631 | 0.97 |" in lines
    assert "| False | 5 | per_condition | 5 | 3,726 | 3,726 | 0 | 65 | 631 | 0.97 |" in lines
    assert not any("| 1,500 |" in line for line in lines)


def test_section_says_why_it_did_not_run() -> None:
    assert "Skipped: no server here." in report_lines({"skipped": "no server here"})
    assert any(line.startswith("Not run") for line in report_lines(None))
