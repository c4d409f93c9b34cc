"""Training data formats: conversations, and the converters from each source format to them.

OASST1 message trees, the Guanaco text, Alpaca records, chat `messages` and prompt/response
pairs all become :data:`Conversation` tuples of :class:`Turn`. A bad record (empty text, missing
parent, a cycle, a conversation ending on the human) is skipped and counted by reason in a
:class:`DataReport`; a record that cannot be read as its format says raises :class:`DataError`
naming its file, line and field. Reading the files is `trainer.data`; tokens, `trainer.encode`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from foundations.errors import UserError

FORMATS = ("oasst1", "guanaco-text", "alpaca", "messages", "pairs")
# Where the loss goes when `train_on` is `auto`, as qlora.py does: on the whole text of
# conversations (its OASST1/Guanaco format has an empty input), on the responses of instructions.
TRAIN_ON_BY_FORMAT = {"oasst1": "all", "guanaco-text": "all", "messages": "all", "alpaca": "assistant",
                      "pairs": "assistant"}  # fmt: skip


class DataError(UserError, ValueError):
    """A file that cannot be read as the format says; the message names file, line and field."""


@dataclass(frozen=True)
class Turn:
    role: str  # "system" | "user" | "assistant"
    text: str


Conversation = tuple[Turn, ...]


@dataclass
class DataReport:
    """What happened to the records: how many became examples, and why the others did not."""

    conversations: int = 0
    skipped: Counter = field(default_factory=Counter)
    trimmed: int = 0
    """OASST1 trees kept after trimming a path that ended on a human turn."""
    truncated: int = 0
    format: str = ""
    """The source's format, as given or guessed."""

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return (
            f"{self.conversations} {self.format} conversations; skipped: {reasons}; "
            f"trimmed to the last answer: {self.trimmed}; truncated: {self.truncated}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "conversations": self.conversations,
            "skipped": dict(self.skipped),
            "trimmed": self.trimmed,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class Record:
    """One raw row and where it came from (`file:line`), for error messages."""

    where: str
    row: dict[str, Any]

    def get(self, name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
        value = self.row.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, kind):
            what = "missing" if name not in self.row else f"a {type(value).__name__}, not the expected type"
            raise DataError(f"{self.where}: field {name!r} is {what}")
        return value


def guess_format(record: Record) -> str:
    row = record.row
    if "message_id" in row:
        return "oasst1"
    if "messages" in row:
        return "messages"
    if "instruction" in row:
        return "alpaca"
    if "prompt" in row:
        return "pairs"
    if "text" in row:
        return "guanaco-text"
    raise DataError(f"{record.where}: cannot tell the format from fields {sorted(row)}; pass --format")


def train_on_for(train_on: str, fmt: str) -> str:
    """`all` or `assistant`: as asked, or for `auto` what qlora.py does for this format."""
    return TRAIN_ON_BY_FORMAT[fmt] if train_on == "auto" else train_on


def oasst1_conversations(records: list[Record], report: DataReport) -> list[Conversation]:
    """Each tree's root, then the top-ranked usable reply at every level down to a leaf; a path
    that ends on a human turn is trimmed back to its last answer (counted as `trimmed`), and a
    tree with no usable answer is dropped (counted as `no_assistant_reply`).

    Deleted messages and spam (`review_result` false) are left out with their replies; so are
    messages with empty text, a parent that is not in the data, or an ancestry that loops."""
    messages: dict[str, Record] = {}
    for rec in records:
        rec.get("message_id", str)
        rec.get("parent_id", str, required=False)
        rec.get("text", str)
        if rec.get("role", str) not in ("prompter", "assistant"):
            raise DataError(f"{rec.where}: field 'role' is {rec.row['role']!r}, not prompter or assistant")
        messages[rec.row["message_id"]] = rec
    usable = {mid: rec for mid, rec in messages.items() if _usable(rec, messages, report)}
    children: dict[str, list[Record]] = defaultdict(list)
    for rec in usable.values():
        if rec.row.get("parent_id") is not None:
            children[rec.row["parent_id"]].append(rec)
    conversations, trimmed = [], set()
    for root in (rec for rec in usable.values() if rec.row.get("parent_id") is None):
        path = [root]
        while children.get(path[-1].row["message_id"]):
            path.append(min(children[path[-1].row["message_id"]], key=_rank_key))
        turns = [Turn("user" if r.row["role"] == "prompter" else "assistant", r.row["text"]) for r in path]
        last_answer = max((i for i, t in enumerate(turns) if t.role == "assistant"), default=-1)
        if last_answer < 0:
            report.skipped["no_assistant_reply"] += 1
            continue
        conversations.append(tuple(turns[: last_answer + 1]))
        if last_answer + 1 < len(turns):
            trimmed.add(id(conversations[-1]))
    kept = _valid(conversations, report)
    report.trimmed += sum(id(conv) in trimmed for conv in kept)
    return kept


def _usable(rec: Record, messages: dict[str, Record], report: DataReport) -> bool:
    row = rec.row
    reason = None
    if row.get("deleted"):
        reason = "deleted"
    elif row.get("review_result") is False:
        reason = "spam"
    elif not row["text"].strip():
        reason = "empty_text"
    elif row.get("parent_id") is not None and row["parent_id"] not in messages:
        reason = "missing_parent"
    elif _in_cycle(rec, messages):
        reason = "cycle"
    if reason:
        report.skipped[reason] += 1
    return reason is None


def _in_cycle(rec: Record, messages: dict[str, Record]) -> bool:
    seen = set()
    node: Record | None = rec
    while node is not None:
        mid = node.row["message_id"]
        if mid in seen:
            return True
        seen.add(mid)
        node = messages.get(node.row.get("parent_id")) if node.row.get("parent_id") is not None else None
    return False


def _rank_key(rec: Record) -> tuple[int, float, str, str]:
    """Lowest rank first; unranked replies after ranked ones; then oldest, then by id (stable)."""
    rank = rec.row.get("rank")
    return (rank is None, rank if rank is not None else 0.0, str(rec.row.get("created_date") or ""),
            rec.row["message_id"])  # fmt: skip


_GUANACO_MARK = re.compile(r"### (Human|Assistant):")


def guanaco_text_conversations(records: list[Record], report: DataReport) -> list[Conversation]:
    """`### Human: ... ### Assistant: ...` strings (timdettmers/openassistant-guanaco)."""
    conversations = []
    for rec in records:
        parts = _GUANACO_MARK.split(rec.get("text", str))
        lead = parts[0].strip()
        turns = [Turn("system", lead)] if lead else []
        for speaker, text in zip(parts[1::2], parts[2::2], strict=True):
            turns.append(Turn("user" if speaker == "Human" else "assistant", text.strip()))
        conversations.append(tuple(turns))
    return _valid(conversations, report)


def alpaca_conversations(records: list[Record], report: DataReport) -> list[Conversation]:
    """instruction (+ input or Databricks-style context) -> output (or response)."""
    conversations = []
    for rec in records:
        instruction = rec.get("instruction", str)
        extra = rec.row.get("input") or rec.row.get("context") or ""
        answer_field = "output" if "output" in rec.row else "response"
        answer = rec.get(answer_field, str)
        prompt = f"{instruction}\n\n{extra}" if str(extra).strip() else instruction
        conversations.append((Turn("user", prompt), Turn("assistant", answer)))
    return _valid(conversations, report)


def messages_conversations(records: list[Record], report: DataReport) -> list[Conversation]:
    """`{"messages": [{"role": ..., "content": ...}, ...]}` as in chat fine-tuning files."""
    conversations = []
    for rec in records:
        turns = []
        for i, message in enumerate(rec.get("messages", list)):
            item = Record(f"{rec.where}: messages[{i}]", message if isinstance(message, dict) else {})
            role = item.get("role", str)
            if role not in ("system", "user", "assistant"):
                raise DataError(f"{item.where}: field 'role' is {role!r}, not system, user or assistant")
            turns.append(Turn(role, item.get("content", str)))
        conversations.append(tuple(turns))
    return _valid(conversations, report)


def pairs_conversations(records: list[Record], report: DataReport) -> list[Conversation]:
    """`{"prompt": ..., "response": ...}` (or `completion`)."""
    conversations = []
    for rec in records:
        answer_field = "completion" if "completion" in rec.row else "response"
        conversations.append(
            (Turn("user", rec.get("prompt", str)), Turn("assistant", rec.get(answer_field, str)))
        )
    return _valid(conversations, report)


def _valid(conversations: Iterable[Conversation], report: DataReport) -> list[Conversation]:
    """Keep conversations that alternate user/assistant after an optional system turn and end on
    the assistant; count the others by reason."""
    kept = []
    for conv in conversations:
        turns = conv[1:] if conv and conv[0].role == "system" else conv
        reason = None
        if not turns:
            reason = "empty_conversation"
        elif any(not t.text.strip() for t in turns):
            reason = "empty_text"
        elif any(t.role != ("user" if i % 2 == 0 else "assistant") for i, t in enumerate(turns)):
            reason = "roles_out_of_order"
        elif turns[-1].role != "assistant":
            reason = "ends_on_human"
        if reason:
            report.skipped[reason] += 1
        else:
            kept.append(conv)
    report.conversations += len(kept)
    return kept


CONVERTERS = {
    "oasst1": oasst1_conversations,
    "guanaco-text": guanaco_text_conversations,
    "alpaca": alpaca_conversations,
    "messages": messages_conversations,
    "pairs": pairs_conversations,
}
