"""Conversations to token ids with exactly masked labels: the template, where the loss goes,
the length cap and where EOS goes; truncations and examples left without a target are counted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from trainer.formats import Conversation, DataError, DataReport

IGNORE = -100
"""The label of a position that carries no loss."""


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def target_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels[1:])


def segments(conv: Conversation, tokenizer: Any, template: str) -> Iterator[tuple[str, bool]]:
    """The conversation's text in pieces, each flagged True when it is the assistant's turn.

    Guanaco: `### Human: {q}### Assistant:` is prompt, ` {a}` is answer (EOS is added by
    :meth:`Encoder.encode`). Chat: the tokenizer's template rendered turn by turn; each piece is the
    difference between consecutive renderings, so the header before an answer is prompt."""
    if template == "guanaco":
        for turn in conv:
            if turn.role == "system":
                yield f"{turn.text}\n", False
            elif turn.role == "user":
                yield f"### Human: {turn.text}### Assistant:", False
            else:
                yield f" {turn.text}", True
        return
    messages = [{"role": t.role, "content": t.text} for t in conv]
    done = ""
    for i, turn in enumerate(conv):
        prompt_next = turn.role != "assistant" and i + 1 < len(conv) and conv[i + 1].role == "assistant"
        rendered = tokenizer.apply_chat_template(
            messages[: i + 1], tokenize=False, add_generation_prompt=prompt_next
        )
        if not rendered.startswith(done):
            raise DataError(
                "the tokenizer's chat template does not render turn by turn; use --template guanaco"
            )
        yield rendered[len(done) :], turn.role == "assistant"
        done = rendered


@dataclass
class Encoder:
    """Turns conversations into examples: the template, where the loss goes, the length cap, and
    where EOS goes (`end`: once after the last turn, as qlora.py; `turn`: after every answer)."""

    tokenizer: Any
    template: str = "guanaco"
    train_on: str = "all"
    max_len: int = 512
    eos: str = "end"

    def __post_init__(self) -> None:
        bos = self.tokenizer.bos_token_id
        # a BOS only where the tokenizer itself puts one (Llama does, SmolLM2 does not)
        self.bos = (
            bos is not None and self.template == "guanaco" and self.tokenizer("a")["input_ids"][:1] == [bos]
        )

    def encode(self, conv: Conversation) -> tuple[Example, bool]:
        """Token ids and labels (-100 where no loss is taken), and whether the end was cut off.

        The conversation (or, with `eos="turn"`, every answer) ends with EOS, so the model learns
        to stop; a chat template's own end token counts. With `train_on="all"` every token but a
        leading BOS is a target; with `"assistant"` only answers and their EOS."""
        eos = self.tokenizer.eos_token_id
        ids, labels = ([self.tokenizer.bos_token_id], [IGNORE]) if self.bos else ([], [])
        pieces = list(segments(conv, self.tokenizer, self.template))
        for number, (text, is_answer) in enumerate(pieces, start=1):
            piece = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            ends = number == len(pieces) or (is_answer and self.eos == "turn")
            if ends and eos not in piece[-2:]:
                piece = [*piece, eos]
            ids.extend(piece)
            labels.extend(piece if (is_answer or self.train_on == "all") else [IGNORE] * len(piece))
        truncated = len(ids) > self.max_len
        return Example(ids[: self.max_len], labels[: self.max_len]), truncated

    def encode_all(self, conversations: list[Conversation], report: DataReport) -> list[Example]:
        """Encode all; truncations are counted, and examples left with no target are dropped by reason."""
        examples = []
        for conv in conversations:
            example, cut = self.encode(conv)
            report.truncated += cut
            if example.target_tokens == 0:
                report.skipped["no_target_after_truncation"] += 1
                continue
            examples.append(example)
        return examples
