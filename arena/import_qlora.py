"""Import the QLoRA paper's evaluation release: prompts, Vicuna generations, GPT-4 judgments.

Layout (artidoro/qlora, folder eval/; see ../shared/data/README.md)::

    prompts/vicuna_questions.jsonl  oa_questions.jsonl  *prompt*.jsonl  reviewer.jsonl  oa_reviewer.jsonl
    generations/vicuna/*.jsonl                      answers (OA answers were not released)
    ratings-gpt4/vicuna/pairwise/A-vs-B-gpt-4-reviewer-threeclass.jsonl
    ratings-gpt4/vicuna/relative-gpt-3.5/A-vs-B-gpt4-reviewer.jsonl
    ratings-gpt4/oa/A-vs-B-gpt-4-reviewer-threeclass.jsonl

Model identity is only in file names; the records carry answer ids. The release's judging script
(eval/eval_gpt_review.py) took an answer file's `answer_id` when it had one, else derived it from
the answer text as judged: ``shortuuid.uuid(generation_truncated.split(CHAT_PREAMBLE)[0])``.
Deriving the ids the same way tells which answer sat in which slot. We trust those ids over the
file names: every record is placed as the ids prove, and disagreements are reported (all relative
files of the fine-tunes, for one, hold the two models in the opposite order to their names).

Rules for a judgment record of file `A-vs-B` (slot 1, slot 2):
- each slot must hold an answer of A or B: by id for models with released answers; for models
  without (all of OA, HuggingChat in the relative scores) any id not owned by a released answer,
  and the same id for the same model and question across all files (majority wins);
- the named order is tried first, then the swapped one (counted as an inconsistency);
- a record that fits neither is skipped and reported (`strict=True` refuses the import instead).

Naming: `13b-guanaco-...` becomes `guanaco-13b`; 30b files are LLaMA-33B models (`guanaco-33b`,
`flan-33b`); `answer_gpt35`/`gpt-3.5` is `gpt-3.5-turbo`. The quirk
`13-self-instruct-vicuna-generations-...-secondround.jsonl` is a second generation round of the
13B self-instruct model that no judgment file names: it is kept as its own contestant,
`self-instruct-13b-secondround`, so its answers stay available without being confused with
`self-instruct-13b`, whose answers the judgments prove.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.benchmarks import parse_oa_questions, parse_vicuna_questions
from arena.imports import (
    ImportReport,
    NoteTally,
    ensure_contestants,
    placeholder_generation,
    write_generations,
    write_judgments,
)
from arena.query.prompts import prompt_ids
from foundations.sources import BenchmarkFileError, field, read_jsonl

log = logging.getLogger(__name__)

CHAT_PREAMBLE = "A chat between a curious human and an artificial intelligence"
JUDGE = "gpt-4"
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


# ---------------------------------------------------------------- reading the release


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


# ---------------------------------------------------------------- deciding who sat where


class SlotResolver:
    """Places each record's two answers on the models that the answer ids prove."""

    def __init__(self, answers: list[Answer], records: list[Record]) -> None:
        self.owners: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        released: dict[str, set[str]] = defaultdict(set)
        for a in answers:
            self.owners[("vicuna", a.key, a.answer_id)].add(a.model)
            released["vicuna"].add(a.model)
        self.placeholder = {
            (r.spec.benchmark, m) for r in records for m in r.named if m not in released[r.spec.benchmark]
        }

    def _fits(self, benchmark: str, key: str, answer_id: str, model: str) -> bool:
        owners = self.owners.get((benchmark, key, answer_id), set())
        return model in owners or (not owners and (benchmark, model) in self.placeholder)

    def orient(self, r: Record) -> tuple[str, str] | None:
        """The models in slots 1 and 2, the named order first; None when neither order fits."""
        bench = r.spec.benchmark
        for m1, m2 in (r.named, r.named[::-1]):
            if self._fits(bench, r.key, r.ids[0], m1) and self._fits(bench, r.key, r.ids[1], m2):
                return m1, m2
        return None

    def resolve(self, records: list[Record], report: ImportReport, tally: NoteTally, strict: bool
                ) -> tuple[list[tuple[Record, str, str]], dict[tuple[str, str, str], str]]:  # fmt: skip
        """Placed records, and the answer id chosen for each (benchmark, key, model) without
        released answers (the id most files agree on)."""
        placed, votes = [], defaultdict(Counter)
        for r in records:
            slots = self.orient(r)
            if slots is None:
                self._skip(r, report, tally, strict, "hold an answer id that matches no released answer of "
                           f"{' or '.join(r.named)}: skipped")  # fmt: skip
                continue
            for model, answer_id in zip(slots, r.ids, strict=True):
                if (r.spec.benchmark, model) in self.placeholder:
                    votes[(r.spec.benchmark, r.key, model)][answer_id] += 1
            placed.append((r, *slots))
        chosen = {slot: count.most_common(1)[0][0] for slot, count in votes.items()}
        agreed = []
        for r, m1, m2 in placed:
            if all(
                chosen.get((r.spec.benchmark, r.key, m), aid) == aid
                for m, aid in zip((m1, m2), r.ids, strict=True)
            ):
                agreed.append((r, m1, m2))
                if (m1, m2) != r.named:
                    report.inconsistencies += 1
                    tally.add(
                        r.source,
                        "hold the two models in the opposite slots to the file name: followed the ids",
                    )
            else:
                self._skip(
                    r, report, tally, strict, "give a model an answer id that other files contradict: skipped"
                )
        used = {(r.spec.benchmark, r.key, m) for r, *slots in agreed for m in slots}
        return agreed, {slot: answer_id for slot, answer_id in chosen.items() if slot in used}

    @staticmethod
    def _skip(r: Record, report: ImportReport, tally: NoteTally, strict: bool, reason: str) -> None:
        if strict:
            raise BenchmarkFileError(r.source, r.line, "answer1_id/answer2_id",
                                     f"{r.ids} do not match answers of {r.named[0]} and {r.named[1]} "
                                     f"for question {r.key}")  # fmt: skip
        report.inconsistencies += 1
        report.skipped += 1
        tally.add(r.source, reason)


# ---------------------------------------------------------------- verdicts


def parse_verdict(r: Record) -> dict[str, Any]:
    """Verdict fields of a record: three-class 1/2/3 (-1 = unparsed), or a relative score pair."""
    if r.spec.relative:
        pair = r.score
        ok = isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, (int, float)) for s in pair)
        if not ok or list(pair) == [-1, -1]:
            return {"verdict": None, "score1": None, "score2": None, "status": "unparsed"}
        s1, s2 = float(pair[0]), float(pair[1])
        verdict = "1" if s1 > s2 else "2" if s2 > s1 else "tie"
        return {"verdict": verdict, "score1": s1, "score2": s2, "status": "ok"}
    verdict = {1: "1", 2: "2", 3: "tie"}.get(r.score) if isinstance(r.score, int) else None
    return {"verdict": verdict, "score1": None, "score2": None, "status": "ok" if verdict else "unparsed"}


# ---------------------------------------------------------------- the import


def release_root(path: Path) -> Path:
    """The release folder: `path` itself, or `path/qlora-eval` for a mirror of ../shared/data."""
    path = Path(path)
    root = path / "qlora-eval" if (path / "qlora-eval").is_dir() else path
    if not (root / "prompts").is_dir() or not (root / "ratings-gpt4").is_dir():
        raise FileNotFoundError(f"{path} does not look like the QLoRA eval release (prompts/, ratings-gpt4/)")
    return root


def import_qlora_release(store: Any, path: Path, strict: bool = False, progress: bool = True) -> ImportReport:
    """Import the release at `path` in one transaction; prints and returns the report."""
    from tqdm import tqdm

    started = time.perf_counter()
    root = release_root(path)
    report, tally = ImportReport(source=str(root)), NoteTally()
    steps = tqdm(total=4, desc="qlora import", disable=not progress, unit="step")
    prompts = {
        "vicuna": parse_vicuna_questions(root / "prompts" / "vicuna_questions.jsonl"),
        "oa": parse_oa_questions(root / "prompts" / "oa_questions.jsonl"),
    }
    answers = read_answers(root)
    records = [r for spec in JUDGMENT_FILES for r in read_records(root, spec)]
    templates = {spec.template_id: read_templates(root, spec) for spec in JUDGMENT_FILES}
    report.records_read = len(answers) + len(records)
    steps.update()
    placed, placeholder_ids = SlotResolver(answers, records).resolve(records, report, tally, strict)
    steps.update()

    with store.session() as session:
        from arena.benchmarks import insert_prompts

        for rows in prompts.values():
            report.count_rows("prompts", len(rows), insert_prompts(session, rows))
        pids = {bench: prompt_ids(session, bench) for bench in prompts}
        contestants = _contestant_specs(answers, placed)
        cids = ensure_contestants(session, contestants, report)
        gen_rows = []
        for a in answers:
            gen_rows.append({"prompt_id": _prompt(pids, "vicuna", a.key, a.row["meta"]["source"]),
                             "contestant_id": cids[a.model], **a.row})  # fmt: skip
        for (bench, key, model), answer_id in placeholder_ids.items():
            source = "qlora-eval/ratings-gpt4 (answers not released)"
            gen_rows.append(
                placeholder_generation(_prompt(pids, bench, key, source), cids[model], answer_id, source)
            )
        gen_ids = write_generations(session, gen_rows, report)
        steps.update()
        judgment_rows = []
        for r, m1, m2 in placed:
            pid = _prompt(pids, r.spec.benchmark, r.key, r.source, r.line)
            template = templates[r.spec.template_id].get(r.reviewer_id)
            if template is None:
                raise BenchmarkFileError(r.source, r.line, "reviewer_id", f"no reviewer {r.reviewer_id}")
            verdict = parse_verdict(r)
            report.unparsed += verdict["status"] == "unparsed"
            judgment_rows.append({
                "judge": JUDGE, "template_id": r.spec.template_id, "template_hash": template[0],
                "prompt_id": pid, "generation1_id": gen_ids[(pid, cids[m1])],
                "generation2_id": gen_ids[(pid, cids[m2])], "raw": r.text, "external_id": r.review_id,
                "meta": {"source": r.source, "line": r.line, "score": r.score}, **verdict,
            })  # fmt: skip
        write_judgments(session, judgment_rows, report, tally)
        steps.update()
    steps.close()
    report.notes = tally.notes()
    report.seconds = time.perf_counter() - started
    print(report.summary())
    log.debug("every note:\n%s", "\n".join(report.notes))
    return report


def _prompt(
    pids: dict[str, dict[str, int]], bench: str, key: str, source: str, line: int | None = None
) -> int:
    if key not in pids[bench]:
        raise BenchmarkFileError(
            source, line, "question_id", f"question {key!r} is not in the {bench} prompts"
        )
    return pids[bench][key]


def _contestant_specs(
    answers: list[Answer], placed: list[tuple[Record, str, str]]
) -> dict[str, dict[str, Any]]:
    sources: dict[str, set[str]] = defaultdict(set)
    for a in answers:
        sources[a.model].add(a.row["meta"]["source"])
    for _record, m1, m2 in placed:
        for m in (m1, m2):
            sources.setdefault(m, set())
    specs = {}
    for name, files in sorted(sources.items()):
        meta = {
            "release": "qlora-eval",
            "source": sorted(files) or ["ratings-gpt4 only: answers not released"],
        }
        spec: dict[str, Any] = {"kind": "release", "meta": meta}
        if name in API_MODELS:
            spec["api_model"] = name
        specs[name] = spec
    return specs
