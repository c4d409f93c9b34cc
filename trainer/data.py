"""Training data: sources of many shapes -> conversations -> token ids with exactly masked labels.

Sources: raw OASST1 message trees (the hub's `OpenAssistant/oasst1` or local JSONL/Parquet of its
rows), the prebuilt `timdettmers/openassistant-guanaco` text (the paper's data), Alpaca records,
chat `messages` and prompt/response pairs; each from a local file or folder, or a hub dataset id.
A broken file stops with its name, line and field; a bad record (empty text, missing parent, a
cycle, a conversation ending on the human) is skipped and counted by reason in a
:class:`DataReport`, so nothing is lost silently. Trimming and truncation are counted the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundations.errors import UserError
from foundations.paths import DATA_DIR

FORMATS = ("oasst1", "guanaco-text", "alpaca", "messages", "pairs")
HUB_SOURCES = {
    "oasst1": ("OpenAssistant/oasst1", "oasst1"),
    "guanaco": ("timdettmers/openassistant-guanaco", "guanaco-text"),
}
SAMPLE = DATA_DIR / "samples" / "oasst1_sample.jsonl"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
VALIDATION_NAMES = {"validation", "valid", "eval", "test"}
FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
IGNORE = -100
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


# ---------------------------------------------------------------- reading files


def read_records(path: Path) -> list[Record]:
    """Rows of a JSONL, JSON-array or Parquet file, each tagged with its file and line (or row)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    if path.suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        return [Record(f"{path}:row {i + 1}", _plain(row)) for i, row in enumerate(frame.to_dict("records"))]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
        return [_record(f"{path}:item {i + 1}", row) for i, row in enumerate(rows)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not valid JSON ({err.msg}, column {err.colno})") from err
        records.append(_record(f"{path}:{number}", row))
    return records


def _record(where: str, row: Any) -> Record:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return Record(where, row)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Parquet rows hold numpy scalars and NaN for missing values; make them plain Python."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, float) and value != value:
            value = None
        out[key] = value
    return out


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


# ---------------------------------------------------------------- formats -> conversations


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


# ---------------------------------------------------------------- splits


def load_splits(
    source: str, fmt: str | None = None, eval_source: str | None = None, eval_fraction: float = 0.05
) -> tuple[list[Conversation], list[Conversation], DataReport, DataReport]:
    """Train and validation conversations, with a report for each (which also names the format).

    The split comes from, in order: a separate `eval_source`; the source's own split (the hub's
    validation split, a folder's eval/test/validation files, or a `split` field in the rows); else
    a stable hash of each tree or record puts `eval_fraction` of them in validation."""
    train_rows, eval_rows, fmt = _split_records(source, fmt, eval_source, eval_fraction)
    if fmt not in CONVERTERS:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    train_report, eval_report = DataReport(format=fmt), DataReport(format=fmt)
    train = CONVERTERS[fmt](train_rows, train_report)
    held_out = CONVERTERS[fmt](eval_rows, eval_report)
    return train, held_out, train_report, eval_report


def train_on_for(train_on: str, fmt: str) -> str:
    """`all` or `assistant`: as asked, or for `auto` what qlora.py does for this format."""
    return TRAIN_ON_BY_FORMAT[fmt] if train_on == "auto" else train_on


def _split_records(
    source: str, fmt: str | None, eval_source: str | None, eval_fraction: float
) -> tuple[list[Record], list[Record], str]:
    records, own_held_out, known_fmt = _source_records(source)
    if not records:
        raise DataError(f"{source}: no records")
    fmt = fmt or known_fmt or guess_format(records[0])
    if eval_source is not None:
        return records + (own_held_out or []), read_records(Path(eval_source)), fmt
    if own_held_out is not None:
        return records, own_held_out, fmt
    if any("split" in r.row for r in records):
        return (
            *_partition(records, lambda r: str(r.row.get("split", "train")).lower() in VALIDATION_NAMES),
            fmt,
        )
    return (*_partition(records, lambda r: _hash_fraction(_group_key(r, fmt)) < eval_fraction), fmt)


def _source_records(source: str) -> tuple[list[Record], list[Record] | None, str | None]:
    """(records, the source's own held-out records or None, its known format or None) of a hub
    alias (`oasst1`, `guanaco`), `sample`, a local file or folder, or a hub dataset id."""
    path = SAMPLE if source == "sample" else Path(source)
    if source in HUB_SOURCES and not path.exists():
        name, fmt = HUB_SOURCES[source]
        return (*_hub_records(name), fmt)
    if path.is_dir():
        return (*_folder_records(path), None)
    if is_hub_id(source):
        return (*_hub_records(source), None)
    return read_records(path), None, None


def is_hub_id(source: str) -> bool:
    """`owner/name` that is no local path and no data file's name: a Hugging Face dataset id."""
    return (
        HUB_ID.fullmatch(source) is not None
        and not Path(source).exists()
        and not source.endswith(FILE_SUFFIXES)
    )


def _folder_records(folder: Path) -> tuple[list[Record], list[Record] | None]:
    """A dataset folder (as a hub dataset's files, downloaded): its eval/test/validation files are
    the held-out split, the other data files are for training."""
    files = sorted(p for p in folder.iterdir() if p.suffix in FILE_SUFFIXES and p.is_file())
    held = [p for p in files if VALIDATION_NAMES & set(re.split(r"[_.\-]", p.stem.lower()))]
    train = [p for p in files if p not in held]
    if not train:
        raise DataError(f"{folder}: no training data file ({', '.join(FILE_SUFFIXES)}) in this folder")
    return _read_all(train), _read_all(held) if held else None


def _read_all(paths: list[Path]) -> list[Record]:
    return [rec for path in paths for rec in read_records(path)]


def _partition(
    records: list[Record], held_out: Callable[[Record], bool]
) -> tuple[list[Record], list[Record]]:
    """(kept for training, held out), in the file's order."""
    kept, held = [], []
    for rec in records:
        (held if held_out(rec) else kept).append(rec)
    return kept, held


def _group_key(rec: Record, fmt: str) -> str:
    """Messages of one OASST1 tree stay together, so no conversation straddles the split."""
    if fmt == "oasst1":
        return str(rec.row.get("message_tree_id") or rec.row.get("message_id"))
    return json.dumps(rec.row, sort_keys=True, default=str)


def _hash_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0x100000000


def _hub_records(name: str) -> tuple[list[Record], list[Record] | None]:
    """A hub dataset's train split and its validation split, if it has one (needs the `datasets`
    package and the hub, or its cache)."""
    try:
        import datasets
    except ImportError as err:
        raise DataError("reading hub datasets needs `pip install datasets`; or pass a local file") from err
    try:
        loaded = datasets.load_dataset(name)
    except Exception as err:
        raise DataError(
            f"{name} is not a local file or folder, and cannot be loaded from the hub ({err}); "
            "download its files and pass the file or folder"
        ) from err
    held = next((s for s in loaded if s in VALIDATION_NAMES), None)
    train = [Record(f"{name}[train]:row {i + 1}", row) for i, row in enumerate(loaded["train"])]
    valid = (
        [Record(f"{name}[{held}]:row {i + 1}", row) for i, row in enumerate(loaded[held])] if held else None
    )
    return train, valid


# ---------------------------------------------------------------- tokens and labels


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
