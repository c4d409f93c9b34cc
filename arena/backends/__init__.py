"""Generation backends behind one small interface: a batch of requests in, one result per request out.

A backend is built for one contestant (:func:`load_backend`), so loading a model happens once per
contestant, and the runner (:mod:`arena.generate`) never needs to know which engine it drives.
Engines are imported lazily: transformers and vLLM are heavy, and vLLM is an optional extra.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from arena.prompting import TURN_ENDS
from arena.store import Contestant
from foundations.errors import UserError

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


def load_backend(name: str, contestant: Contestant, params: GenerateParams) -> Backend:
    """The backend that answers as `contestant`: `name` for local models, always `openai` for API ones."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}")
    if contestant.kind == "api":
        from arena.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(contestant, params)
    if name == "openai":
        raise UserError(
            f"contestant {contestant.name!r} is a local model: use --backend transformers or vllm"
        )
    from arena.models import spec

    fmt = (contestant.meta or {}).get("prompt_format", "auto")
    if name == "vllm":
        from arena.backends.vllm_backend import VLLMBackend

        return VLLMBackend(spec(contestant), params, fmt)
    from arena.backends.transformers_backend import TransformersBackend

    return TransformersBackend(spec(contestant), params, fmt)
