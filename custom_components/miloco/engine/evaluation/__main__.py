"""Run the evaluation command line: python -m <package>.engine.evaluation."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
