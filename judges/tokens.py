"""Prompt tokens of a judge call before it is sent, for budgets that must not be overrun.

OpenAI models are counted with their own tokenizer (tiktoken). Every other model, and an OpenAI
model whose tiktoken encoding cannot be loaded (tiktoken downloads its BPE files once, into
``TIKTOKEN_CACHE_DIR``; offline without that cache it cannot), gets an upper bound instead: the
text's UTF-8 byte count. Byte-level BPE and byte-fallback tokenizers (GPT, Llama, Mistral, SmolLM)
never make more tokens than bytes, so a budget planned on the bound is never overrun; for English
it is about four times the real count, which only holds back reservations near the budget's end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

PER_MESSAGE = 4
"""Tokens a chat message costs beyond its text (role and separators; OpenAI's is 3 or 4)."""
REPLY_PRIMING = 3
"""Tokens every reply is primed with (`<|start|>assistant<|message|>`)."""
LOAD_TIMEOUT_S = 20.0
"""tiktoken fetches a missing BPE file without a timeout: a firewalled network must not hang a run."""


def prompt_tokens(model: str, messages: Sequence[dict[str, str]]) -> int:
    """The prompt tokens of `messages` sent to `model`: exact for OpenAI models when tiktoken's
    encoding is at hand, else an upper bound."""
    encoding = _encoding(model)
    if encoding is None:
        text_tokens = sum(len(m["content"].encode("utf-8")) for m in messages)
    else:
        text_tokens = sum(len(encoding.encode(m["content"], disallowed_special=())) for m in messages)
    return text_tokens + PER_MESSAGE * len(messages) + REPLY_PRIMING


def exact_for(model: str) -> bool:
    """Whether :func:`prompt_tokens` counts `model`'s tokens exactly (else it bounds them)."""
    return _encoding(model) is not None


@lru_cache(maxsize=32)
def _encoding(model: str) -> Any:
    try:
        import tiktoken
    except ImportError:  # pragma: no cover - a dependency; counted by the bound without it
        return None
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:  # not an OpenAI model
        return None
    try:
        return _load(tiktoken, name)
    except Exception as err:  # noqa: BLE001 - offline, proxy, corrupt cache: all mean "no encoding"
        log.warning(
            "tiktoken could not load %s for %s (%s: %s); prompt tokens are bounded by UTF-8 bytes "
            "instead (put the BPE file in TIKTOKEN_CACHE_DIR to count them exactly)",
            name, model, type(err).__name__, str(err)[:120],
        )  # fmt: skip
        return None


def _load(tiktoken: Any, name: str) -> Any:
    """`tiktoken.get_encoding(name)` in a daemon thread, given up after LOAD_TIMEOUT_S."""
    found: dict[str, Any] = {}

    def load() -> None:
        try:
            found["encoding"] = tiktoken.get_encoding(name)
        except Exception as err:  # noqa: BLE001 - re-raised in the caller's thread
            found["error"] = err

    thread = threading.Thread(target=load, name="tiktoken-load", daemon=True)
    thread.start()
    thread.join(LOAD_TIMEOUT_S)
    if "error" in found:
        raise found["error"]
    if "encoding" not in found:
        raise TimeoutError(f"no answer within {LOAD_TIMEOUT_S:g}s")
    return found["encoding"]
