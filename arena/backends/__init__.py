"""Generation backends behind one small interface: a batch of requests in, one result per request out.

A backend is built for one contestant (:func:`load_backend`), so loading a model happens once per
contestant, and the runner (:mod:`arena.generate`) never needs to know which engine it drives.
Engines are imported lazily: transformers and vLLM are heavy, and vLLM is an optional extra.
"""

from __future__ import annotations

from arena.backends.base import BACKENDS, Backend, GenerateParams, Request, Result
from arena.store import Contestant
from foundations.errors import UserError

__all__ = ["BACKENDS", "Backend", "GenerateParams", "Request", "Result", "load_backend"]
"""The interface (:mod:`arena.backends.base`) is re-exported: callers name the package only."""


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
