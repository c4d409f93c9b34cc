"""The bundle's format: its files, its tables and their columns, and how ids and times are written.

Everything that decides a bundle's bytes and names lives here, so exporting (:mod:`.export`),
reading back (:mod:`.load`) and the data card (:mod:`.card`) cannot disagree about them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

FORMATS = ("jsonl", "parquet")
CHECKSUMS = "SHA256SUMS"
CARD = "README.md"
BATTLES = "battles.json"

CONTENT = {
    "prompts": {"turns", "context", "reference"},
    "generations": {"text", "turn_texts", "raw_text", "prompt_sent"},
    "judgments": {"raw"},
    "tags": {"note"},
}
"""Data kept as written (a prompt may well name /usr/bin): only credentials in URLs are cut."""
IDENTIFIERS = {"run_id", "prompt_id", "benchmark", "key", "name", "contestant", "generation_id",
               "generation1_id", "generation2_id", "model_1", "model_2", "judgment_id", "tag_id",
               "annotator", "tag"}  # fmt: skip
"""Columns that link records: never rewritten as paths, or the links would break."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # str | int | float | json | time
    doc: str


def _c(name: str, kind: str, doc: str) -> Column:
    return Column(name, kind, doc)


SCHEMA: dict[str, list[Column]] = {
    "runs": [
        _c("run_id", "str", "stable id: hash of kind, name and start time"),
        _c("kind", "str", "tournament, generation, import, training, ..."),
        _c("name", "str", "the run's name"),
        _c("status", "str", "running, done, failed"),
        _c(
            "config",
            "json",
            "the run's configuration (judge model, sampling parameters, ...), secrets redacted",
        ),
        _c("started_at", "time", "when the run started (UTC, ISO 8601)"),
        _c("finished_at", "time", "when it finished, if it did"),
    ],
    "prompts": [
        _c("prompt_id", "str", "stable id: `<benchmark>/<key>`"),
        _c("benchmark", "str", "benchmark name (vicuna, oa, mt-bench, ...)"),
        _c("key", "str", "the item's id within its benchmark"),
        _c("category", "str", "the benchmark's category, if any"),
        _c("turns", "json", "user turns to answer, in order"),
        _c("context", "json", "earlier conversation turns given as-is (role/content dicts)"),
        _c("reference", "json", "reference answers, if the benchmark has them"),
        _c("source", "str", "the file the prompt came from"),
        _c("source_sha256", "str", "sha256 of that file"),
        _c("meta", "json", "anything else the source said"),
    ],
    "contestants": [
        _c("name", "str", "stable id: the contestant's unique name"),
        _c("kind", "str", "local, api, release or human"),
        _c("base_model", "str", "base model (Hugging Face id or path)"),
        _c("adapter", "str", "LoRA adapter, if any"),
        _c("quantization", "str", "quantization used to generate (nf4, ...)"),
        _c("api_model", "str", "API model name for API contestants"),
        _c("meta", "json", "free-form metadata, secrets redacted"),
        _c("created_at", "time", "when it entered the arena"),
    ],
    "generations": [
        _c("generation_id", "str", "stable id: hash of prompt_id and contestant"),
        _c("prompt_id", "str", "-> prompts.prompt_id"),
        _c("contestant", "str", "-> contestants.name"),
        _c("text", "str", "the answer (the first turn's, for several turns)"),
        _c("turn_texts", "json", "every turn's answer"),
        _c("raw_text", "str", "what the model emitted before it was cut at the end of its turn"),
        _c("prompt_sent", "str", "the full prompt as sent to the model"),
        _c("params", "json", "sampling parameters (temperature, top_p, max_new_tokens, ...)"),
        _c("seed", "int", "random seed"),
        _c("backend", "str", "transformers, vllm, openai, release, ..."),
        _c("prompt_tokens", "int", "tokens in the prompt"),
        _c("completion_tokens", "int", "tokens generated"),
        _c("seconds", "float", "wall-clock seconds to generate"),
        _c("external_id", "str", "the id the source release gave the answer"),
        _c("run_id", "str", "-> runs.run_id"),
        _c("meta", "json", "anything else, secrets redacted"),
        _c("created_at", "time", "when it was generated or imported"),
    ],
    "judgments": [
        _c("judgment_id", "str", "stable id: hash of judge, template_hash, generation1_id, generation2_id"),
        _c("prompt_id", "str", "-> prompts.prompt_id"),
        _c("generation1_id", "str", "-> generations.generation_id of the answer shown first (slot 1)"),
        _c("generation2_id", "str", "-> generations.generation_id of the answer shown second (slot 2)"),
        _c("model_1", "str", "contestant of slot 1 (denormalised for convenience)"),
        _c("model_2", "str", "contestant of slot 2 (denormalised for convenience)"),
        _c("judge", "str", "`openai:<model>` for a model judge, `human:<annotator>` for a person's vote"),
        _c("template_id", "str", "the judge template's id"),
        _c("template_hash", "str", "sha256 of the judge template's text"),
        _c("turn", "int", "the conversation turn judged (MT-bench's second turn has its own templates)"),
        _c("verdict", "str", "`1` slot 1 won, `2` slot 2 won, `tie`, `both_bad`; empty for score pairs"),
        _c("score1", "float", "slot 1's score, for scoring templates"),
        _c("score2", "float", "slot 2's score, for scoring templates"),
        _c("status", "str", "`ok` (verdict read), `unparsed` or `error` (raw output kept)"),
        _c("raw", "str", "the judge's full output: its reasons"),
        _c("prompt_tokens", "int", "judge prompt tokens"),
        _c("completion_tokens", "int", "judge completion tokens"),
        _c("cost_usd", "float", "cost of the judge call"),
        _c("external_id", "str", "the id the source release gave the judgment"),
        _c("run_id", "str", "-> runs.run_id"),
        _c("meta", "json", "anything else, secrets redacted"),
        _c("created_at", "time", "when it was judged or imported"),
    ],
    "tags": [
        _c("tag_id", "str", "stable id: hash of judgment_id, annotator and tag"),
        _c("judgment_id", "str", "-> judgments.judgment_id"),
        _c("annotator", "str", "who tagged it"),
        _c("tag", "str", "`lemon` or `cherry`"),
        _c("note", "str", "the annotator's note"),
        _c("created_at", "time", "when it was tagged"),
    ],
}
TABLES = tuple(SCHEMA)
SORT_KEYS = {
    "runs": ("run_id",),
    "prompts": ("prompt_id",),
    "contestants": ("name",),
    "generations": ("prompt_id", "contestant"),
    "judgments": ("prompt_id", "model_1", "model_2", "judge", "template_hash"),
    "tags": ("judgment_id", "annotator", "tag"),
}


LATER_COLUMNS = {"judgments": {"turn": 1}}
"""Columns added after the first bundle format, with the value an older bundle implies."""


BUNDLE_FILE = re.compile(
    r"(?:(?:" + "|".join(TABLES) + r")\.(?:jsonl|parquet)|" + re.escape(BATTLES) + "|" + re.escape(CARD)
    + r"|leaderboards/[A-Za-z0-9_.-]+\.csv)"
)  # fmt: skip
"""Every name a release writes: the tables, the battles, the card and leaderboards/<safe name>.csv."""


def bundle_file_name(name: str) -> bool:
    """Whether `name` is one a release writes (so no path outside the bundle, no `..`)."""
    return bool(BUNDLE_FILE.fullmatch(name)) and ".." not in name.split("/")


def stable_id(*parts: Any) -> str:
    """16 hex digits of sha256 over the parts: the same natural key gives the same id anywhere."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]


def iso_time(value: dt.datetime | None) -> str | None:
    """A time as the bundle writes it: ISO 8601, or None."""
    return value.isoformat() if value is not None else None


def canonical(value: Any) -> Any:
    """Nested dicts with sorted keys, so that JSON text never depends on insertion order."""
    if isinstance(value, dict):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value
