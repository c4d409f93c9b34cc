"""The QLoRA paper's evaluation release as it lies on disk: its layout, its naming, and its records.

Layout (artidoro/qlora, folder eval/; see ../shared/data/README.md)::

    prompts/vicuna_questions.jsonl  oa_questions.jsonl  *prompt*.jsonl  reviewer.jsonl  oa_reviewer.jsonl
    generations/vicuna/*.jsonl                      answers (OA answers were not released)
    ratings-gpt4/vicuna/pairwise/A-vs-B-gpt-4-reviewer-threeclass.jsonl
    ratings-gpt4/vicuna/relative-gpt-3.5/A-vs-B-gpt4-reviewer.jsonl
    ratings-gpt4/oa/A-vs-B-gpt-4-reviewer-threeclass.jsonl

Model identity is only in file names; the records carry answer ids. The release's judging script
(eval/eval_gpt_review.py) took an answer file's `answer_id` when it had one, else derived it from
the answer text as judged: ``shortuuid.uuid(generation_truncated.split(CHAT_PREAMBLE)[0])``;
:func:`derived_answer_id` derives them the same way, so the importer (:mod:`arena.import_qlora`)
can tell which answer sat in which slot.

Naming: `13b-guanaco-...` becomes `guanaco-13b`; 30b files are LLaMA-33B models (`guanaco-33b`,
`flan-33b`); `answer_gpt35`/`gpt-3.5` is `gpt-3.5-turbo`. The quirk
`13-self-instruct-vicuna-generations-...-secondround.jsonl` is a second generation round of the
13B self-instruct model that no judgment file names: it is kept as its own contestant,
`self-instruct-13b-secondround`, so its answers stay available without being confused with
`self-instruct-13b`, whose answers the judgments prove.

Every record read is checked field by field: a bad one raises BenchmarkFileError naming the file,
line and field.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundations.sources import BenchmarkFileError, field, read_jsonl

CHAT_PREAMBLE = "A chat between a curious human and an artificial intelligence"
SIZES = {"7": "7b", "13": "13b", "30": "33b", "33": "33b", "65": "65b"}
ALIASES = {
    "gpt4": "gpt-4", "gpt-4": "gpt-4", "gpt35": "gpt-3.5-turbo", "gpt-3.5": "gpt-3.5-turbo",
    "bard": "bard", "vicuna-13b": "vicuna-13b",
}  # fmt: skip
API_MODELS = {"gpt-4", "gpt-3.5-turbo", "bard"}


@dataclass(frozen=True)
class JudgmentFile:
    """One ratings file: which benchmark, which template family, and the question-id field."""

    folder: str
    benchmark: str
    template_id: str
    prompt_file: str
    reviewer_file: str
    key_field: str
    relative: bool = False


JUDGMENT_FILES = (
    JudgmentFile("ratings-gpt4/vicuna/pairwise", "vicuna", "qlora-vicuna-threeclass",
                 "vicuna_prompt_threeclass.jsonl", "reviewer.jsonl", "question_id"),
    JudgmentFile("ratings-gpt4/vicuna/relative-gpt-3.5", "vicuna", "qlora-vicuna-relative",
                 "vicuna_prompt_relative.jsonl", "reviewer.jsonl", "question_id", relative=True),
    JudgmentFile("ratings-gpt4/oa", "oa", "qlora-oa-threeclass",
                 "oa_prompt_threeclass.jsonl", "oa_reviewer.jsonl", "message_id"),
)  # fmt: skip


def contestant_name(stem: str) -> str:
    """The arena name of a release file's model, e.g. `30b-flan-vicuna-generations-topp0.9-temp0.7`
    -> `flan-33b`, `answer_gpt35` -> `gpt-3.5-turbo`."""
    name = re.sub(r"^answer[-_]", "", stem)
    name = re.sub(r"-(?:vicuna|oa)-generations.*?(-secondround)?$", lambda m: m.group(1) or "", name)
    sized = re.fullmatch(r"(\d+)b?-(.+?)(-secondround)?", name)
    if sized and sized[1] in SIZES:
        return f"{sized[2]}-{SIZES[sized[1]]}{sized[3] or ''}"
    if name in ALIASES:
        return ALIASES[name]
    raise ValueError(f"cannot name the model of {stem!r}")


def judged_text(record: dict[str, Any]) -> str:
    """The answer exactly as the release's judging script showed it to GPT-4."""
    for name in ("generation_truncated", "generation"):
        if name in record:
            return record[name].split(CHAT_PREAMBLE)[0]
    return record["text"]


def derived_answer_id(text: str) -> str:
    """The id the release's judging script gave an answer without one: shortuuid of its text."""
    import shortuuid

    return shortuuid.uuid(text)


def canonical_hash(record: dict[str, Any]) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def release_root(path: Path) -> Path:
    """The release folder: `path` itself, or `path/qlora-eval` for a mirror of ../shared/data."""
    path = Path(path)
    root = path / "qlora-eval" if (path / "qlora-eval").is_dir() else path
    if not (root / "prompts").is_dir() or not (root / "ratings-gpt4").is_dir():
        raise FileNotFoundError(f"{path} does not look like the QLoRA eval release (prompts/, ratings-gpt4/)")
    return root


@dataclass
class Answer:
    model: str
    key: str
    answer_id: str
    row: dict[str, Any]  # Generation fields except prompt and contestant ids


@dataclass
class Record:
    spec: JudgmentFile
    source: str
    line: int
    key: str
    named: tuple[str, str]
    ids: tuple[str, str]
    review_id: str | None
    text: str
    score: Any
    reviewer_id: int


def read_answers(root: Path) -> list[Answer]:
    answers = []
    for path in sorted((root / "generations" / "vicuna").glob("*.jsonl")):
        model, source = contestant_name(path.stem), _rel(root, path)
        params = {k: float(v) for k, v in re.findall(r"(topp|temp)(\d+(?:\.\d+)?)", path.stem)}
        params = {"top_p" if k == "topp" else "temperature": v for k, v in params.items()}
        seen: set[str] = set()
        for line, rec in read_jsonl(path):
            key = str(field(rec, "question_id", (int, str), path, line))
            if key in seen:
                raise BenchmarkFileError(path, line, "question_id", f"second answer to question {key}")
            seen.add(key)
            if "answer_id" in rec:
                answer_id = field(rec, "answer_id", str, path, line)
                text = field(rec, "text", str, path, line)
                row = {"text": text, "meta": {"source": source, "model_id": rec.get("model_id")}}
            else:
                field(
                    rec,
                    "generation_truncated" if "generation_truncated" in rec else "generation",
                    str,
                    path,
                    line,
                )
                text = judged_text(rec)
                answer_id = derived_answer_id(text)
                row = {"text": text, "raw_text": rec.get("generation"), "prompt_sent": rec.get("prompt"),
                       "params": params, "meta": {"source": source, "answer_id_derived": True}}  # fmt: skip
            row |= {"backend": "release", "external_id": answer_id}
            answers.append(Answer(model, key, answer_id, row))
    return answers


def read_records(root: Path, spec: JudgmentFile) -> list[Record]:
    records = []
    for path in sorted((root / spec.folder).glob("*.jsonl")):
        named = _named_models(path)
        source = _rel(root, path)
        for line, rec in read_jsonl(path):
            key = str(field(rec, spec.key_field, (int, str), path, line))
            ids = (field(rec, "answer1_id", str, path, line), field(rec, "answer2_id", str, path, line))
            text = field(rec, "text", str, path, line)
            if "score" not in rec:
                raise BenchmarkFileError(path, line, "score", "missing")
            reviewer = field(rec, "reviewer_id", int, path, line)
            records.append(Record(spec, source, line, key, named, ids, rec.get("review_id"), text,
                                  rec["score"], reviewer))  # fmt: skip
    return records


def _named_models(path: Path) -> tuple[str, str]:
    stem = re.sub(r"-gpt-?4-reviewer(?:-threeclass)?$", "", path.stem)
    parts = stem.split("-vs-")
    try:
        if len(parts) != 2:
            raise ValueError("expected '<model 1>-vs-<model 2>-gpt-4-reviewer...'")
        return contestant_name(parts[0]), contestant_name(parts[1])
    except ValueError as err:
        raise BenchmarkFileError(
            path, None, None, f"cannot tell the two models from the file name: {err}"
        ) from None


def read_templates(root: Path, spec: JudgmentFile) -> dict[int, tuple[str, dict[str, Any]]]:
    """Template hash and record by the judgments' `reviewer_id`, as the judging script chose it:
    reviewer_id is a 1-based line of the reviewer file, whose `prompt_id` picks the prompt line."""
    prompts_dir = root / "prompts"
    prompt_path, reviewer_path = prompts_dir / spec.prompt_file, prompts_dir / spec.reviewer_file
    prompts = {field(rec, "prompt_id", int, prompt_path, line): rec for line, rec in read_jsonl(prompt_path)}
    out = {}
    for line, reviewer in read_jsonl(reviewer_path):
        prompt_id = field(reviewer, "prompt_id", int, reviewer_path, line)
        if prompt_id not in prompts:
            raise BenchmarkFileError(
                reviewer_path, line, "prompt_id", f"no prompt {prompt_id} in {prompt_path.name}"
            )
        out[line] = (canonical_hash(prompts[prompt_id]), prompts[prompt_id])
    return out


def _rel(root: Path, path: Path) -> str:
    return f"qlora-eval/{path.relative_to(root).as_posix()}"
