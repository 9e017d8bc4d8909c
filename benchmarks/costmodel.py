"""The simulated model's reply time: a fixed part, plus a price per image token and per output token."""

from __future__ import annotations

from dataclasses import asdict, dataclass
import math
from typing import Any, Final

# A rough tokenizer: JSON replies average about four characters per token.
CHARS_PER_TOKEN: Final = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    """How long the simulated model takes to answer a request."""

    fixed_s: float = 0.05
    per_image_token_s: float = 0.0003
    per_output_token_s: float = 0.010

    @classmethod
    def fixed(cls, seconds: float) -> CostModel:
        """Return a model that answers every request in `seconds`, whatever its size."""
        return cls(fixed_s=seconds, per_image_token_s=0.0, per_output_token_s=0.0)

    def model_time(self, image_tokens: int, output_tokens: int) -> float:
        """Return the seconds the model spends on a request of this size."""
        return self.fixed_s + self.per_image_token_s * image_tokens + self.per_output_token_s * output_tokens

    def as_dict(self) -> dict[str, Any]:
        """Return the parameters, for the results file."""
        return asdict(self)


def output_tokens(text: str) -> int:
    """Return the output tokens of a reply text (about four characters each, at least one)."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))
