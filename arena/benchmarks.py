"""The benchmarks (Vicuna, OA, MT-bench): how their files (:mod:`foundations.sources`) become prompts.

A file whose schema is wrong is refused with the file, line and field named, so nothing half-read
reaches the store.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from foundations import paths
from foundations.sources import BenchmarkFileError, field, read_jsonl, registry, resolve_file, sha256_file

BENCHMARKS = ("vicuna", "oa", "mt-bench")
SAMPLE = "sample"
SAMPLE_FILE = paths.DATA_DIR / "samples" / "prompts.jsonl"


def _prompt_row(benchmark: str, key: str, category: str | None, turns: list[str], path: Path,
                digest: str, context: list | None = None, reference: list | None = None,
                meta: dict | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "benchmark": benchmark, "key": key, "category": category, "turns": turns,
        "context": context or [], "reference": reference, "source": str(path),
        "source_sha256": digest, "meta": meta or {},
    }  # fmt: skip


def parse_vicuna_questions(path: Path, benchmark: str = "vicuna") -> list[dict[str, Any]]:
    """Vicuna-format questions (`question_id`, `text`, `category`), as in the QLoRA release and
    the project's own sample file."""
    digest = sha256_file(path)
    rows = []
    for line, rec in read_jsonl(path):
        qid = field(rec, "question_id", (int, str), path, line)
        text = field(rec, "text", str, path, line)
        rows.append(_prompt_row(benchmark, str(qid), rec.get("category"), [text], path, digest))
    return _unique(rows, path)


def parse_fastchat_questions(
    path: Path, benchmark: str, reference: Path | None = None
) -> list[dict[str, Any]]:
    """FastChat-format questions (`question_id`, `category`, `turns`), with the reference answers
    of `reference` (a FastChat model_answer file) where present, else the question's own
    `reference` field (MT-bench has one for some math and reasoning items)."""
    digest = sha256_file(path)
    refs = _reference_answers(reference) if reference else {}
    rows = []
    for line, rec in read_jsonl(path):
        qid = str(field(rec, "question_id", (int, str), path, line))
        if "turns" not in rec and isinstance(rec.get("text"), str):
            rec = {**rec, "turns": [rec["text"]]}  # the Vicuna format of the QLoRA release
        turns = field(rec, "turns", list, path, line)
        if not turns or not all(isinstance(t, str) for t in turns):
            raise BenchmarkFileError(path, line, "turns", "expected a non-empty list of strings")
        ref, ref_source = refs.get(qid), "fastchat gpt-4 reference answer"
        if ref is None and rec.get("reference"):
            ref, ref_source = list(rec["reference"]), "question file"
        meta = {"reference_source": ref_source} if ref else {}
        rows.append(_prompt_row(benchmark, qid, rec.get("category"), turns, path, digest,
                                reference=ref, meta=meta))  # fmt: skip
    return _unique(rows, path)


def _reference_answers(path: Path) -> dict[str, list[str]]:
    out = {}
    for line, rec in read_jsonl(path):
        qid = str(field(rec, "question_id", (int, str), path, line))
        choices = field(rec, "choices", list, path, line)
        if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("turns"), list):
            raise BenchmarkFileError(path, line, "choices", "expected [{'turns': [...]}, ...]")
        out[qid] = list(choices[0]["turns"])
    return out


_SPEAKER = re.compile(r"\s*### (Human|Assistant):[ \t]?")


def split_oa_input(text: str) -> list[dict[str, str]]:
    """`### Human: a ### Assistant: b ### Human: c ### Assistant:` as role/content turns; the
    trailing empty assistant turn (the one to answer) is dropped."""
    parts = _SPEAKER.split(text)
    if parts[0].strip():
        raise ValueError("text before the first '### Human:'")
    turns = [
        {"role": "user" if speaker == "Human" else "assistant", "content": content.strip()}
        for speaker, content in zip(parts[1::2], parts[2::2], strict=True)
    ]
    if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()
    return turns


def parse_oa_questions(path: Path, benchmark: str = "oa") -> list[dict[str, Any]]:
    """The QLoRA release's OA queries: the last user turn to answer, earlier turns as context, the
    top-ranked human reply (`output`) as reference; keyed by the OASST1 message id."""
    digest = sha256_file(path)
    rows = []
    for line, rec in read_jsonl(path):
        key = field(rec, "message_id", str, path, line)
        flat = field(rec, "input", str, path, line)
        try:
            turns = split_oa_input(flat)
        except ValueError as err:
            raise BenchmarkFileError(path, line, "input", str(err)) from None
        if not turns or turns[-1]["role"] != "user":
            raise BenchmarkFileError(path, line, "input", "does not end with a '### Human:' turn to answer")
        reference = [rec["output"]] if isinstance(rec.get("output"), str) else None
        meta = {k: rec[k] for k in ("parent_id", "rank", "lang") if k in rec}
        rows.append(_prompt_row(benchmark, key, rec.get("category"), [turns[-1]["content"]], path,
                                digest, context=turns[:-1], reference=reference, meta=meta))  # fmt: skip
    return _unique(rows, path)


def _unique(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        if row["key"] in seen:
            raise BenchmarkFileError(path, number, "question_id", f"duplicate id {row['key']!r}")
        seen.add(row["key"])
    return rows


# ---------------------------------------------------------------- benchmarks as prompt rows


def load_benchmark(name: str, source: Path | None = None) -> list[dict[str, Any]]:
    """Rows ready for the Prompt table.

    `source` is a mirror directory laid out like the public release, or a single questions file
    in the benchmark's own format (then unpinned: its checksum is recorded, not checked). Without
    it, the cache filled by `guanaco data fetch` (or `GUANACO_DATA_MIRROR`) is used."""
    if name == SAMPLE:
        return load_sample_prompts(source if source and Path(source).is_file() else None)
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}: choose from {', '.join((*BENCHMARKS, SAMPLE))}")
    spec = registry()["benchmarks"][name]
    source = Path(source) if source else None
    if source is not None and source.is_file():
        questions, reference = source, None
    else:
        questions = resolve_file(spec["questions"], source)
        reference = resolve_file(spec["reference"], source) if "reference" in spec else None
    if name == "oa":
        return parse_oa_questions(questions)
    return parse_fastchat_questions(questions, name, reference)


def load_sample_prompts(path: Path | None = None) -> list[dict[str, Any]]:
    """The project's own small prompt set (benchmark "sample"), for the offline demo."""
    return parse_vicuna_questions(Path(path) if path else SAMPLE_FILE, benchmark=SAMPLE)


def insert_prompts(session: Any, rows: list[dict[str, Any]]) -> int:
    from arena.query.writes import insert_ignore
    from arena.store import Prompt

    return insert_ignore(session, Prompt, rows)


def ensure_prompts(store: Any, name: str, source: Path | None = None) -> int:
    """Load a benchmark into the store; prompts already there are kept. Returns how many were new."""
    rows = load_benchmark(name, source)
    with store.session() as session:
        return insert_prompts(session, rows)
