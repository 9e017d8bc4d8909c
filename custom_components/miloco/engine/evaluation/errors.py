"""The one error the evaluation toolkit shows its user."""

from __future__ import annotations


class EvaluationError(Exception):
    """Bad input, or a backend that cannot serve; the message is shown to the user as it is, on one line."""
