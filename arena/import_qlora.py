"""Import the QLoRA paper's evaluation release: prompts, Vicuna generations, GPT-4 judgments.

The release's files, names and records are read by :mod:`arena.qlora_release`. Model identity
there is only in file names, while the records carry answer ids; we trust the ids over the file
names: every record is placed as the ids prove, and disagreements are reported (all relative
files of the fine-tunes, for one, hold the two models in the opposite order to their names).

Rules for a judgment record of file `A-vs-B` (slot 1, slot 2):
- each slot must hold an answer of A or B: by id for models with released answers; for models
  without (all of OA, HuggingChat in the relative scores) any id not owned by a released answer,
  and the same id for the same model and question across all files (majority wins);
- the named order is tried first, then the swapped one (counted as an inconsistency);
- a record that fits neither is skipped and reported (`strict=True` refuses the import instead).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
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
from arena.qlora_release import (
    API_MODELS,
    JUDGMENT_FILES,
    Answer,
    Record,
    read_answers,
    read_records,
    read_templates,
    release_root,
)
from arena.query.prompts import prompt_ids
from foundations.sources import BenchmarkFileError

log = logging.getLogger(__name__)

JUDGE = "gpt-4"


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
