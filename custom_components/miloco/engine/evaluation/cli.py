"""The command line: `run` scores a clip set on a backend, `convert` builds a clip set from videos and a CSV."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
import json
import logging
import os
from pathlib import Path
import sys
from typing import Any, Final, NoReturn

from ..backend_defaults import DEFAULT_CONTEXT_SIZE, EMBEDDED_TIMEOUT_S, REMOTE_TIMEOUT_S
from ..window import DEFAULT_FPS, Frame, FrameWindow
from .clips import ACTIVITY_KEYS, GESTURE_KEYS, ClipSet, load_clip_set
from .connect import BackendOptions, EmbeddedOptions, RemoteOptions, check_options, open_backend
from .convert import convert
from .errors import EvaluationError
from .media import load_footage
from .plot import pr_curve_png
from .report import build_report, render_markdown
from .runner import ClipOutcome, SettingRun, check_budgets, evaluate
from .settings import Setting, parse_setting
from .thresholds import class_curves

PROG: Final = "scripts/eval"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the tool."""

    def error(self, message: str) -> NoReturn:
        """Print the error on one line and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status: 0 done, 1 bad input or backend, 2 bad usage."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR, format="%(name)s: %(message)s"
    )
    try:
        if args.command == "convert":
            return _convert(args)
        return _run(args)
    except EvaluationError as err:
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    """Return the parser of both commands."""
    parser = _Parser(prog=PROG, description="Evaluate Miloco's perception on a labelled clip set.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,convert}")
    run = commands.add_parser(
        "run",
        help="score a clip set on a backend",
        description="Run every clip through the backend as a camera check would, once per setting, and report "
        "per-class precision, recall and F1, tokens and latency, and per class with P(yes) the precision-recall "
        "curve (PNG files beside --markdown or --json) with its best-F1 threshold (markdown on stdout).",
    )
    run.add_argument("clip_set", type=Path, metavar="SET", help="clip set folder (see docs/evaluation.md)")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="OpenAI-compatible server, e.g. http://localhost:8080")
    where.add_argument("--model-path", type=Path, metavar="GGUF", help="embedded: the model GGUF file")
    run.add_argument("--model", help="remote: model name (default: the first one the server lists)")
    run.add_argument("--api-key-env", metavar="VAR", help="remote: environment variable holding the API key")
    run.add_argument("--mmproj-path", type=Path, metavar="GGUF", help="embedded: the vision projector GGUF")
    run.add_argument("--threads", type=int, help="embedded: CPU threads (default: llama.cpp's choice)")
    run.add_argument(
        "--context", type=int, default=DEFAULT_CONTEXT_SIZE, help="embedded: context size in tokens"
    )
    run.add_argument(
        "--timeout",
        type=float,
        help=f"seconds per request (default {REMOTE_TIMEOUT_S:g}, embedded {EMBEDDED_TIMEOUT_S:g})",
    )
    run.add_argument("--retries", type=int, default=2, help="remote: retries of a failed request (default 2)")
    run.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="SPEC",
        help="e.g. mode=per_condition,frames=6,detail=medium,thinking=off (keys: mode, answer (full or compact, "
        "combined mode), frames, detail or budget, thinking, name); repeat to compare settings; default: the "
        "integration's defaults",
    )
    run.add_argument(
        "--classes",
        metavar="KEYS",
        help="comma-separated label keys to score (default: every gesture and activity)",
    )
    run.add_argument("--json", type=Path, metavar="FILE", help="also write the full report as JSON")
    run.add_argument("--markdown", type=Path, metavar="FILE", help="also write the markdown report to a file")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    convert_ = commands.add_parser(
        "convert",
        help="build a clip set from a folder of videos and a CSV of labels",
        description="CSV columns: file, gestures, activities (label keys separated by ';'), optionally fps.",
    )
    convert_.add_argument(
        "--videos", type=Path, required=True, metavar="DIR", help="folder of the video files"
    )
    convert_.add_argument("--labels", type=Path, required=True, metavar="CSV", help="the labels CSV file")
    convert_.add_argument("--out", type=Path, required=True, metavar="SET", help="new clip set folder")
    convert_.add_argument(
        "--fps", type=float, default=DEFAULT_FPS, help=f"sampling rate (default {DEFAULT_FPS:g})"
    )
    for sub in (run, convert_):
        sub.add_argument("--verbose", action="store_true", help="log what the engine does (stderr)")
    return parser


def _convert(args: argparse.Namespace) -> int:
    """Build the clip set and say how many clips it holds."""
    if not args.fps > 0:
        raise EvaluationError(f"--fps must be positive, not {args.fps:g}")
    names = convert(args.videos, args.labels, args.out, args.fps)
    print(f"wrote {len(names)} clips to {args.out}", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> int:
    """Load and check everything, run the settings, write the reports."""
    settings = [parse_setting(text) for text in args.setting] or [Setting()]
    labels = [setting.label for setting in settings]
    if len(set(labels)) != len(labels):
        raise EvaluationError("two settings are the same or share a name: give each a different name=")
    gestures, activities = _classes(args.classes)
    options = _backend_options(args)
    check_options(options)
    clip_set = load_clip_set(args.clip_set)
    # Every frame is read and checked before the backend starts: a bad clip fails fast, not after an hour.
    footage = load_footage(
        clip_set.clips, max(FrameWindow.for_checks_of(setting.frames).capacity for setting in settings)
    )
    check_budgets(clip_set.clips, footage, settings)
    runs, backend_facts = asyncio.run(
        _evaluate(
            options, clip_set, footage, settings, gestures=gestures, activities=activities, quiet=args.quiet
        )
    )
    report = build_report(clip_set, runs, backend=backend_facts, classes=[*gestures, *activities])
    folder = next((path.parent for path in (args.markdown, args.json) if path is not None), None)
    if folder is not None:
        _write_plots(folder, runs, report, [*gestures, *activities])
    markdown = render_markdown(report)
    if args.json is not None:
        _write(args.json, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.markdown is not None:
        _write(args.markdown, markdown)
    sys.stdout.write(markdown)
    failed = sum(entry["cost"]["failed_checks"] for entry in report["settings"])
    if failed:
        checks = sum(entry["cost"]["checks"] for entry in report["settings"])
        print(
            f"{PROG}: warning: {failed} of {checks} checks failed and count as seeing nothing (see the report)",
            file=sys.stderr,
        )
    return 0


async def _evaluate(
    options: BackendOptions,
    clip_set: ClipSet,
    footage: Mapping[str, Sequence[Frame]],
    settings: list[Setting],
    *,
    gestures: tuple[str, ...],
    activities: tuple[str, ...],
    quiet: bool,
) -> tuple[list[SettingRun], dict[str, Any]]:
    """Open the backend, run every setting, and return the runs with the backend's facts."""
    total = len(settings) * len(clip_set.clips)
    done = 0

    def progress(setting: Setting, outcome: ClipOutcome) -> None:
        nonlocal done
        done += 1
        if not quiet:
            status = (
                f"failed: {outcome.error}"
                if outcome.error
                else f"saw {', '.join(sorted(outcome.predicted)) or 'nothing'}"
            )
            print(
                f"[{done}/{total}] {setting.label} | {outcome.clip}: {outcome.latency_s:.2f} s, {status}",
                file=sys.stderr,
            )

    async with open_backend(options) as (backend, facts):
        runs = await evaluate(
            backend,
            clip_set.clips,
            footage,
            settings,
            gestures=gestures,
            activities=activities,
            progress=progress,
        )
    return runs, facts


def _classes(text: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the gestures and activities to score, in catalogue order."""
    if text is None:
        return GESTURE_KEYS, ACTIVITY_KEYS
    keys = {key.strip() for key in text.split(",") if key.strip()}
    known = (*GESTURE_KEYS, *ACTIVITY_KEYS)
    unknown = sorted(keys - set(known))
    if unknown:
        raise EvaluationError(f"--classes: unknown label {unknown[0]!r} (known: {', '.join(known)})")
    if not keys:
        raise EvaluationError("--classes names no label")
    return tuple(k for k in GESTURE_KEYS if k in keys), tuple(k for k in ACTIVITY_KEYS if k in keys)


def _backend_options(args: argparse.Namespace) -> BackendOptions:
    """Return the backend the arguments describe; raise EvaluationError for a missing or misplaced one."""
    if args.url is not None:
        if args.mmproj_path is not None:
            raise EvaluationError("--mmproj-path goes with --model-path, not --url")
        api_key = None
        if args.api_key_env:
            api_key = os.environ.get(args.api_key_env)
            if not api_key:
                raise EvaluationError(
                    f"--api-key-env: the environment variable {args.api_key_env} is not set"
                )
        return RemoteOptions(
            url=args.url,
            model=args.model,
            api_key=api_key,
            timeout_s=args.timeout or REMOTE_TIMEOUT_S,
            retries=max(0, args.retries),
        )
    if args.mmproj_path is None:
        raise EvaluationError("--model-path needs --mmproj-path (the vision projector)")
    if args.model is not None or args.api_key_env is not None:
        raise EvaluationError("--model and --api-key-env go with --url, not --model-path")
    return EmbeddedOptions(
        model_path=args.model_path,
        mmproj_path=args.mmproj_path,
        threads=args.threads,
        context=args.context,
        timeout_s=args.timeout or EMBEDDED_TIMEOUT_S,
    )


def _write_plots(
    folder: Path, runs: Sequence[SettingRun], report: dict[str, Any], classes: Sequence[str]
) -> None:
    """Draw each setting's curves as PNG files in the report's folder, and name them in the report."""
    for number, (run, entry) in enumerate(zip(runs, report["settings"], strict=True), 1):
        for key, curve in class_curves(run.outcomes, classes).items():
            name = f"pr-{number}-{key}.png"
            _write_bytes(folder / name, pr_curve_png(curve, title=f"{key} · {run.setting.label}"))
            entry["thresholds"][key]["plot"] = name


def _write_bytes(path: Path, data: bytes) -> None:
    """Write a plot file, creating its folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as err:
        raise EvaluationError(f"cannot write {path}: {err.strerror or err}") from None


def _write(path: Path, text: str) -> None:
    """Write a report file, creating its folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise EvaluationError(f"cannot write {path}: {err.strerror or err}") from None
