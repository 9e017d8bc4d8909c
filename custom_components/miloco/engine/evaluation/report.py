"""The report of a run: a JSON document, and the markdown that puts the settings side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from statistics import fmean
from typing import Any, Final

from ..labels import Label, by_key
from .clips import ClipSet
from .metrics import Confusion, Scores, confusions, macro, micro, percentile, scores
from .runner import ClipOutcome, SettingRun
from .thresholds import POOLED, class_curves, curve_entry, form_snippet

REFERENCE_MODEL: Final = "MiMo-VL-Miloco-7B"
REFERENCE_SOURCE: Final = (
    "MiMo-VL-Miloco technical report, arXiv 2512.17436 (per-class F1 on its own test set)"
)
_AVERAGES: Final = (
    ("macro_gestures", "macro, gestures"),
    ("macro_activities", "macro, activities"),
    ("macro", "macro, all"),
    ("micro", "micro, all"),
)
_MAX_MISTAKES: Final = 20
_DASH: Final = "–"


def build_report(
    clip_set: ClipSet, runs: Sequence[SettingRun], *, backend: Mapping[str, Any], classes: Sequence[str]
) -> dict[str, Any]:
    """Return the whole report as JSON-ready data; every score is a fraction in [0, 1] or None."""
    labels = [by_key(key) for key in classes]
    support = {key: sum(key in clip.labels for clip in clip_set.clips) for key in classes}
    return {
        "clip_set": {"path": str(clip_set.root), "clips": len(clip_set.clips), "support": support},
        "backend": dict(backend),
        "classes": [
            {"key": label.key, "kind": str(label.kind), "name": label.prompt_name, "trained": label.trained}
            for label in labels
        ],
        "reference": _reference(labels),
        "settings": [_setting_report(run, labels) for run in runs],
    }


def _reference(labels: Sequence[Label]) -> dict[str, Any]:
    """Return the report's published F1 for the classes, with macro averages over those it covers."""
    per_class = {label.key: _published(label) for label in labels}

    def mean(kinds: set[str]) -> float | None:
        values = [f1 for label in labels if (f1 := _published(label)) is not None and label.kind in kinds]
        return round(fmean(values), 4) if values else None

    return {
        "model": REFERENCE_MODEL,
        "source": REFERENCE_SOURCE,
        "f1": per_class,
        "macro_gestures": mean({"gesture"}),
        "macro_activities": mean({"activity"}),
        "macro": mean({"gesture", "activity"}),
    }


def _published(label: Label) -> float | None:
    """Return a label's published F1 as a fraction (the report gives percent with one decimal)."""
    return None if label.report_f1 is None else round(label.report_f1 / 100, 4)


def _setting_report(run: SettingRun, labels: Sequence[Label]) -> dict[str, Any]:
    """Return one setting's scores, counts, cost and per-clip outcomes."""
    setting = run.setting
    counts = confusions(((o.truth, o.predicted) for o in run.outcomes), [label.key for label in labels])
    per_kind = {
        kind: [counts[label.key] for label in labels if label.kind == kind]
        for kind in ("gesture", "activity")
    }
    return {
        "label": setting.label,
        "setting": setting.describe(),
        "mode": setting.mode,
        "frames": setting.frames,
        "detail": setting.detail,
        "budget_tokens": setting.budget,
        "thinking": setting.thinking,
        "per_class": {key: _class_entry(confusion) for key, confusion in counts.items()},
        "averages": {
            "macro_gestures": _scores_entry(macro(per_kind["gesture"])),
            "macro_activities": _scores_entry(macro(per_kind["activity"])),
            "macro": _scores_entry(macro(counts.values())),
            "micro": _scores_entry(micro(counts.values())),
        },
        "cost": _cost(run.outcomes),
        # Per class with a P(yes), then POOLED: the precision-recall curve and the best-F1 threshold.
        "thresholds": {
            key: curve_entry(curve)
            for key, curve in class_curves(run.outcomes, [label.key for label in labels]).items()
        },
        "clips": [_clip_entry(outcome) for outcome in run.outcomes],
    }


def _class_entry(confusion: Confusion) -> dict[str, Any]:
    """Return a class's counts and scores."""
    return {
        "tp": confusion.tp,
        "fp": confusion.fp,
        "fn": confusion.fn,
        "tn": confusion.tn,
        "support": confusion.support,
        **_scores_entry(scores(confusion)),
    }


def _scores_entry(value: Scores) -> dict[str, float | None]:
    """Return scores as floats (None where undefined)."""
    return {"precision": _float(value.precision), "recall": _float(value.recall), "f1": _float(value.f1)}


def _float(value: Fraction | None) -> float | None:
    """Return a fraction as the nearest float."""
    return None if value is None else float(value)


def _cost(outcomes: Sequence[ClipOutcome]) -> dict[str, Any]:
    """Return what the checks cost: tokens and requests per answered check, latency over every check."""
    answered = [o for o in outcomes if o.error is None]
    latencies = [o.latency_s for o in outcomes]

    def mean_of(values: Sequence[int | None]) -> float | None:
        known = [value for value in values if value is not None]
        return fmean(known) if known and len(known) == len(values) else None

    return {
        "checks": len(outcomes),
        "failed_checks": len(outcomes) - len(answered),
        "requests_per_clip": mean_of([o.requests for o in answered]),
        "image_tokens_per_clip": mean_of([o.image_tokens for o in answered]),
        "prompt_tokens_per_clip": mean_of([o.prompt_tokens for o in answered]),
        "completion_tokens_per_clip": mean_of([o.completion_tokens for o in answered]),
        "latency_s": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "mean": fmean(latencies) if latencies else None,
            "max": max(latencies, default=None),
        },
    }


def _clip_entry(outcome: ClipOutcome) -> dict[str, Any]:
    """Return one clip's outcome."""
    return {
        "clip": outcome.clip,
        "truth": sorted(outcome.truth),
        "predicted": sorted(outcome.predicted),
        "frames_sent": outcome.frames_sent,
        "image_tokens": outcome.image_tokens,
        "requests": outcome.requests,
        "latency_s": outcome.latency_s,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "reason": outcome.reason,
        "error": outcome.error,
        "probabilities": dict(outcome.probabilities),
    }


# --- markdown -----------------------------------------------------------------------------------------


def render_markdown(report: Mapping[str, Any]) -> str:
    """Return the report as markdown: settings, F1 side by side with the reference, cost, then counts."""
    settings: list[dict[str, Any]] = report["settings"]
    lines = [
        *_header(report),
        "",
        *_settings_table(settings),
        "",
        *_f1_table(report),
        "",
        *_cost_table(settings),
    ]
    for entry in settings:
        lines += ["", *_counts_table(entry, report["classes"]), *_mistakes(entry)]
        lines += ["", *_thresholds_table(entry)]
    return "\n".join(lines) + "\n"


def _header(report: Mapping[str, Any]) -> list[str]:
    """Return the title and one line on the clip set and the backend."""
    clip_set, backend = report["clip_set"], report["backend"]
    where = f" at {backend['url']}" if backend.get("url") else ""
    return [
        "# Miloco evaluation",
        "",
        f"Clip set `{clip_set['path']}`: {clip_set['clips']} clips. "
        f"Backend: {backend.get('kind', '?')} `{backend.get('model', '?')}`{where}.",
    ]


def _settings_table(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Return the table naming each setting column."""
    rows = [f"| {entry['label']} | `{entry['setting']}` |" for entry in settings]
    return ["## Settings", "", "| column | setting |", "|---|---|", *rows]


def _f1_table(report: Mapping[str, Any]) -> list[str]:
    """Return per-class F1 (percent) with one column per setting and the published reference last."""
    settings: list[dict[str, Any]] = report["settings"]
    reference = report["reference"]
    support = report["clip_set"]["support"]
    head = ["class", "clips", *(entry["label"] for entry in settings), f"{REFERENCE_MODEL} (report)"]
    lines = ["## F1 per class (%)", "", _row(head), _row(["---", *["--:"] * (len(head) - 1)])]
    for label in report["classes"]:
        key = label["key"]
        cells = [_percent(entry["per_class"][key]["f1"]) for entry in settings]
        lines.append(
            _row([f"{label['name']} `{key}`", str(support[key]), *cells, _percent(reference["f1"][key])])
        )
    for name, title in _AVERAGES:
        cells = [_percent(entry["averages"][name]["f1"]) for entry in settings]
        lines.append(_row([f"**{title}**", "", *cells, _percent(reference.get(name))]))
    lines += [
        "",
        f"{_DASH}: undefined (no clip shows the class and none was predicted), or not published. "
        f"The reference column is {REFERENCE_MODEL}'s F1 on the report's own test set, not on this one; "
        "its macro averages cover the classes it reports.",
    ]
    return lines


def _cost_table(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Return requests, tokens and latency per check for each setting."""
    head = [
        "setting",
        "requests",
        "image tokens",
        "prompt tokens",
        "reply tokens",
        "latency p50 (s)",
        "latency p95 (s)",
        "failed checks",
    ]
    lines = ["## Cost per clip", "", _row(head), _row(["---", *["--:"] * (len(head) - 1)])]
    for entry in settings:
        cost = entry["cost"]
        latency = cost["latency_s"]
        lines.append(
            _row(
                [
                    entry["label"],
                    _number(cost["requests_per_clip"], "{:.0f}"),
                    _number(cost["image_tokens_per_clip"], "{:.0f}"),
                    _number(cost["prompt_tokens_per_clip"], "{:.0f}"),
                    _number(cost["completion_tokens_per_clip"], "{:.0f}"),
                    _number(latency["p50"], "{:.2f}"),
                    _number(latency["p95"], "{:.2f}"),
                    f"{cost['failed_checks']} of {cost['checks']}",
                ]
            )
        )
    lines += [
        "",
        "Means over the checks that got an answer; prompt and reply tokens as the server reported them. "
        "Latency is the wall-clock time of a whole check (resizing, every request, parsing).",
    ]
    return lines


def _counts_table(entry: Mapping[str, Any], classes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Return one setting's confusion counts and scores per class."""
    head = ["class", "TP", "FP", "FN", "TN", "precision", "recall", "F1"]
    lines = [f"## Counts: {entry['label']}", "", _row(head), _row(["---", *["--:"] * (len(head) - 1)])]
    for label in classes:
        row = entry["per_class"][label["key"]]
        counts = [str(row[name]) for name in ("tp", "fp", "fn", "tn")]
        scores_ = [_percent(row[name]) for name in ("precision", "recall", "f1")]
        lines.append(_row([label["key"], *counts, *scores_]))
    for name, title in _AVERAGES:
        average = entry["averages"][name]
        cells = [_percent(average[score]) for score in ("precision", "recall", "f1")]
        lines.append(_row([f"**{title}**", "", "", "", "", *cells]))
    return lines


def _thresholds_table(entry: Mapping[str, Any]) -> list[str]:
    """Return one setting's curves: area, best-F1 threshold and its scores per class, and the form snippet."""
    title = f"## Thresholds: {entry['label']}"
    thresholds: Mapping[str, Mapping[str, Any]] = entry["thresholds"]
    if not thresholds:
        return [
            title,
            "",
            "No probabilities: the combined mode lists labels without a yes/no, or the server gave no "
            "log-probabilities. Run with `mode=per_condition` on a server that returns them.",
        ]
    head = ["class", "AP", "best-F1 threshold", "precision", "recall", "F1", "curve"]
    lines = [title, "", _row(head), _row(["---", *["--:"] * (len(head) - 2), "---"])]
    for key, curve in thresholds.items():
        best = curve["best_f1"]
        plot = curve.get("plot")
        cells = [
            f"**{key}** (pooled)" if key == POOLED else key,
            _number(curve["average_precision"], "{:.3f}"),
            _DASH if best is None else f"{best['threshold']:.4f}",
            _DASH if best is None else _percent(best["precision"]),
            _DASH if best is None else _percent(best["recall"]),
            _DASH if best is None else _percent(best["f1"]),
            f"[{plot}]({plot})" if plot else _DASH,
        ]
        lines.append(_row(cells))
    lines += [
        "",
        "AP: the area under the precision-recall curve (average precision). A clip counts as seen when its "
        "P(yes) is at least the threshold; of thresholds with the same F1 the highest is shown (fewer false "
        "alarms). To apply them (whole percent, rounded down):",
        "",
        "```yaml",
        *form_snippet(thresholds),
        "```",
    ]
    return lines


def _mistakes(entry: Mapping[str, Any]) -> list[str]:
    """Return the clips the setting got wrong (missed, imagined or failed), the first few of them."""
    found: list[str] = []
    for clip in entry["clips"]:
        truth, predicted = set(clip["truth"]), set(clip["predicted"])
        parts = []
        if clip["error"]:
            parts.append(f"check failed ({clip['error']})")
        if missed := sorted(truth - predicted):
            parts.append(f"missed {', '.join(missed)}")
        if imagined := sorted(predicted - truth):
            parts.append(f"false {', '.join(imagined)}")
        if parts:
            found.append(f"- `{clip['clip']}`: {'; '.join(parts)}")
    if not found:
        return []
    more = len(found) - _MAX_MISTAKES
    tail = [f"- … and {more} more (see the JSON report)"] if more > 0 else []
    return ["", "Clips with mistakes:", "", *found[:_MAX_MISTAKES], *tail]


def _row(cells: Sequence[str]) -> str:
    """Return a markdown table row."""
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _percent(value: float | None) -> str:
    """Return a fraction as a percentage with one decimal, or a dash."""
    return _DASH if value is None else f"{value * 100:.1f}"


def _number(value: float | None, form: str) -> str:
    """Return a number in the given format, or a dash."""
    return _DASH if value is None else form.format(value)
