"""Prompt formats: how a conversation becomes the exact text a local model is given.

Conversations are lists of ``{"role": "system"|"user"|"assistant", "content": str}`` messages, the
same shape OpenAI-compatible endpoints take, so every backend starts from one representation:

- ``guanaco``: the QLoRA paper's format (checked byte for byte against its released prompts);
- ``chat``: the tokenizer's own chat template;
- ``auto``: ``chat`` when the tokenizer has a template, else ``guanaco``.

Models run on past the end of their turn (the paper's 65B Guanaco wrote a new "### Human:" turn in
23 of its 80 Vicuna answers), so :func:`cut_at_turn_end` cuts there; callers keep the raw text too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GUANACO_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
FORMATS = ("auto", "guanaco", "chat")
TURN_ENDS = ("### Human:", "### Assistant:", "<|im_end|>", "<|endoftext|>", "</s>")
"""Markers that end the assistant's turn, in any format: a new speaker tag or an end token."""

_ROLES = {"user": "user", "human": "user", "prompter": "user", "assistant": "assistant",
          "bot": "assistant", "gpt": "assistant", "system": "system"}  # fmt: skip

Message = dict[str, str]


def normalise(messages: Sequence[dict[str, Any]]) -> list[Message]:
    """Messages with roles mapped to user/assistant/system (OA says `prompter`, FastChat `human`)."""
    out = []
    for i, message in enumerate(messages):
        role = _ROLES.get(str(message.get("role", "")).lower())
        if role is None or not isinstance(message.get("content"), str):
            raise ValueError(
                f"message {i}: needs a role (user/assistant/system) and text content, got {message!r}"
            )
        out.append({"role": role, "content": message["content"]})
    return out


def conversation(
    context: Sequence[dict[str, Any]], turns: Sequence[str], answers: Sequence[str]
) -> list[Message]:
    """The messages for the next turn: earlier context, then each asked turn with its answer so far.

    For MT-bench's second turn, `answers` holds the first answer, so the prompt includes it."""
    if len(answers) >= len(turns):
        raise ValueError("every turn is already answered")
    messages = normalise(context)
    for i, question in enumerate(turns[: len(answers) + 1]):
        messages.append({"role": "user", "content": question})
        if i < len(answers):
            messages.append({"role": "assistant", "content": answers[i]})
    return messages


def guanaco(messages: Sequence[Message]) -> str:
    """`<system> ### Human: q ### Assistant: a ... ### Human: q ### Assistant:` as the paper wrote it."""
    system = GUANACO_SYSTEM
    parts = []
    for message in messages:
        if message["role"] == "system":
            system = message["content"]
        else:
            tag = "Human" if message["role"] == "user" else "Assistant"
            parts.append(f" ### {tag}: {message['content']}")
    return system + "".join(parts) + " ### Assistant:"


def resolve_format(fmt: str, tokenizer: Any | None) -> str:
    """`auto` becomes `chat` when the tokenizer has a chat template, else `guanaco`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown prompt format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "guanaco"
    if fmt == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt format 'chat' needs a tokenizer with a chat template; use 'guanaco'")
    return fmt


def render(messages: Sequence[Message], fmt: str, tokenizer: Any | None = None) -> str:
    """The exact text sent to a local model for `messages` in format `fmt` (see :func:`resolve_format`)."""
    fmt = resolve_format(fmt, tokenizer)
    if fmt == "guanaco":
        return guanaco(messages)
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def cut_at_turn_end(text: str, stops: Sequence[str] = TURN_ENDS) -> str:
    """The assistant's answer: `text` up to the first marker that starts another turn, stripped."""
    end = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=len(text))
    return text[:end].strip()
