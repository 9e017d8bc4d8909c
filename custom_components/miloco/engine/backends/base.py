"""The contract every model backend fulfils: one vision request in, one reply out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .errors import BackendError

# The documented switch that turns MiMo-VL's chain of thought off for one turn.
NO_THINK_SUFFIX = "/no_think"


@dataclass(frozen=True, slots=True, kw_only=True)
class VisionRequest:
    """One question about images: a short clip (frames oldest first) or separate named images; question last."""

    system_prompt: str
    frames: Sequence[bytes]
    question: str
    lead_in: str = ""
    # Separate images: the text before each frame that names it ("Image 1: front_door.jpg"); empty for a clip.
    frame_labels: Sequence[str] = ()
    json_schema: Mapping[str, Any] | None = None
    max_tokens: int = 256
    thinking: bool = False
    # How many alternatives per generated token to ask log-probabilities for; None asks for none.
    logprobs: int | None = None

    def __post_init__(self) -> None:
        """Refuse labels that do not name every frame."""
        if self.frame_labels and len(self.frame_labels) != len(self.frames):
            raise ValueError(f"{len(self.frame_labels)} labels for {len(self.frames)} frames")

    def user_content(self, image_part: Callable[[bytes], dict[str, Any]]) -> list[dict[str, Any]]:
        """Return the user message's parts: the lead-in, each frame (after its label, if any), the question.

        `image_part` turns a frame into the backend's image part; every backend builds the message here.
        """
        content: list[dict[str, Any]] = []
        if self.lead_in:
            content.append({"type": "text", "text": self.lead_in})
        labels: Sequence[str | None] = self.frame_labels or [None] * len(self.frames)
        for label, frame in zip(labels, self.frames, strict=True):
            if label:
                content.append({"type": "text", "text": label})
            content.append(image_part(frame))
        content.append({"type": "text", "text": self.user_text()})
        return content

    def user_text(self) -> str:
        """Return the question with the no-think switch appended when thinking is off."""
        if self.thinking:
            return self.question
        return f"{self.question}{NO_THINK_SUFFIX}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenUsage:
    """Token counts as the server reported them (None when it did not)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token: its text, its log-probability (NaN: unknown), its likeliest alternatives (text → logprob)."""

    text: str
    logprob: float
    top: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class VisionReply:
    """The model's raw reply text and what it cost."""

    text: str
    model: str
    latency_s: float
    usage: TokenUsage = field(default_factory=TokenUsage)
    # The generated tokens with their log-probabilities, when asked for and the server gave them.
    tokens: tuple[TokenLogprob, ...] | None = None


@dataclass(slots=True, kw_only=True)
class BackendStats:
    """Counters a backend keeps for diagnostics."""

    requests: int = 0
    failures: int = 0
    retries: int = 0
    last_latency_s: float | None = None
    last_error: str | None = None

    async def count(self, reply: Awaitable[VisionReply]) -> VisionReply:
        """Await one request's reply, counting it, its failure (with the reason) or its latency."""
        self.requests += 1
        try:
            answered = await reply
        except BackendError as err:
            self.failed(err)
            raise
        self.last_latency_s = answered.latency_s
        self.last_error = None
        return answered

    def failed(self, err: BackendError) -> None:
        """Count a failed request and keep its reason."""
        self.failures += 1
        self.last_error = err.reason

    def as_dict(self) -> dict[str, Any]:
        """Return the counters for diagnostics."""
        return asdict(self)


class VisionBackend(Protocol):
    """A model that answers vision requests (remote server or embedded)."""

    @property
    def model(self) -> str:
        """Return the model name used in requests."""

    @property
    def max_concurrency(self) -> int:
        """Return how many requests this backend serves at once."""

    @property
    def stats(self) -> BackendStats:
        """Return the running counters."""

    async def async_start(self) -> None:
        """Connect to or load the model; raise a BackendError when it cannot serve."""

    async def async_complete(self, request: VisionRequest) -> VisionReply:
        """Answer one request; raise a BackendError on failure."""

    async def async_close(self) -> None:
        """Release every resource; later calls raise BackendClosed."""

    def diagnostics(self) -> dict[str, Any]:
        """Return secret-free facts about this backend for diagnostics."""
