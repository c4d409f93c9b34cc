"""The interface every generation backend implements: sampling settings, a request, a result.

Apart from :func:`arena.backends.load_backend`, which imports the engines, so that the engines
can import this without importing the package that loads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from arena.prompting import TURN_ENDS

BACKENDS = ("transformers", "vllm", "openai")


@dataclass(frozen=True)
class GenerateParams:
    """Sampling and batching settings; defaults follow the QLoRA paper (p = 0.9, T = 0.7).

    `temperature` 0 means greedy decoding. `stop` adds stop strings to the turn-end markers."""

    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 512
    seed: int = 0
    batch_size: int = 16
    concurrency: int = 8
    stop: tuple[str, ...] = TURN_ENDS

    def sampling(self) -> dict[str, Any]:
        """What decides the text, as stored with every generation."""
        return {k: v for k, v in asdict(self).items() if k in ("temperature", "top_p", "max_new_tokens")}


@dataclass(frozen=True)
class Request:
    """One turn to answer: the conversation so far (role/content messages, last one the user's)."""

    messages: list[dict[str, str]]


@dataclass
class Result:
    """One answer: `text` cut at the end of the assistant's turn, `raw` as emitted, `prompt_sent` exact.

    `error` says why a request got no answer (an API call that failed for good); nothing is stored
    for it, so the next run retries it."""

    text: str
    raw: str
    prompt_sent: str
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Backend(Protocol):
    name: str

    def generate(self, requests: list[Request]) -> list[Result]:
        """Answer every request, in order (one result per request)."""
        ...

    def identity(self) -> dict[str, Any]:
        """Which model, adapter and engine produced the answers (stored as provenance)."""
        ...

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters as actually applied (stored with every generation)."""
        ...

    def close(self) -> None:
        """Free the model's memory."""
        ...
