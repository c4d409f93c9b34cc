"""Import FastChat llm_judge files: model answers, model judgments (pairwise and single), battles.

Formats as FastChat writes them (fastchat/llm_judge):
- model_answer JSONL: `question_id`, `answer_id`, `model_id`, `choices[0].turns`;
- model_judgment JSONL, pairwise (`play_a_match_pair`): `question_id`, `model_1`, `model_2`,
  `g1_winner`/`g2_winner` ("model_1", "model_2", "tie", "error"), `judge` [model, prompt name],
  `g1_judgment`/`g2_judgment`, `turn`. Game 1 shows model_1 first, game 2 model_2 first: two
  judgments, one per order;
- model_judgment JSONL, single (`play_a_match_single`): `question_id`, `model`, `judge`,
  `judgment`, `score` (-1 = unparsed), `turn`. Stored with the graded answer in both slots, the
  score in `score1`, no verdict, and `meta.mode = "single"`;
- clean_battle JSON (a list): `model_a`, `model_b`, `winner` ("model_a", "model_b", "tie",
  "tie (bothbad)"), `question_id`, `judge`, `turn`; `conversation_a`/`_b` when present supply the
  answers. Judges named `gpt...` keep their name; any other judge is a person: `human:<judge>`.

Answers that no file supplies become placeholder generations (empty text, `text_missing`), filled
in when a later import brings the answer file. The `turn` (1, or 2 for MT-bench's second turn) is
stored in the judgment's `turn` column; a turn-2 record must name a `*-multi-turn` judge prompt and
a turn-1 record must not, so the template hash keeps the two turns apart in the judgment key.
:func:`export_fastchat` writes stored judgments back in FastChat's model_judgment format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from arena.benchmarks import load_benchmark
from arena.imports import (
    ImportReport,
    NoteTally,
    ensure_contestants,
    placeholder_generation,
    write_generations,
    write_judgments,
)
from arena.query.prompts import prompt_ids
from foundations.sources import BenchmarkFileError, field, read_jsonl, resolve_file

log = logging.getLogger(__name__)

PAIR_WINNERS = {"model_1": 0, "model_2": 1, "tie": None}
BATTLE_VERDICTS = {"model_a": "1", "model_b": "2", "tie": "tie", "tie (bothbad)": "both_bad"}


def file_kind(path: Path) -> str:
    """answers | pairwise | single | battles, from the first record."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return "battles"
    for _line, rec in read_jsonl(path):
        if "choices" in rec:
            return "answers"
        if "g1_winner" in rec:
            return "pairwise"
        if "score" in rec and "model" in rec:
            return "single"
        break
    raise BenchmarkFileError(
        path, 1, None, "not a FastChat model_answer, model_judgment or clean_battle file"
    )


def read_battles(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BenchmarkFileError(path, err.lineno, None, f"not valid JSON (truncated?): {err.msg}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BenchmarkFileError(path, None, None, "expected a JSON list of battle objects")
    return [(i, rec) for i, rec in enumerate(data, start=1)]


def template_hash(name: str, templates: dict[str, dict[str, Any]]) -> str:
    """sha256 of FastChat's judge prompt record of that name (canonical JSON), or of the name."""
    record = templates.get(name, {"name": name})
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def judge_templates(mirror: Path | None) -> dict[str, dict[str, Any]]:
    try:
        path = resolve_file("fastchat/judge_prompts.jsonl", mirror)
    except (FileNotFoundError, ValueError):
        return {}
    return {rec.get("name"): rec for _line, rec in read_jsonl(path)}


class _Batch:
    """Generations and judgments collected from all files, written at the end in one go."""

    def __init__(self, source: str) -> None:
        self.answers: dict[tuple[str, str], dict[str, Any]] = {}  # (model, key) -> fields
        self.needed: set[tuple[str, str]] = set()
        self.judgments: list[dict[str, Any]] = []  # with model/key placeholders resolved later
        self.report = ImportReport(source=source)
        self.tally = NoteTally()


def import_fastchat(store: Any, files: list[Path], benchmark: str = "mt-bench", mirror: Path | None = None,
                    progress: bool = True) -> ImportReport:  # fmt: skip
    """Import FastChat files into `benchmark`'s prompts (loaded from the cache or `mirror`) in one
    transaction; prints and returns the report."""
    from tqdm import tqdm

    started = time.perf_counter()
    files = [Path(f) for f in files]
    batch = _Batch(", ".join(str(f) for f in files))
    templates = judge_templates(mirror)
    kinds = {path: file_kind(path) for path in files}
    order = {"answers": 0, "pairwise": 1, "single": 1, "battles": 1}
    for path in tqdm(
        sorted(files, key=lambda p: order[kinds[p]]), desc="fastchat import", disable=not progress
    ):
        {"answers": _answers, "pairwise": _pairwise, "single": _single, "battles": _battles}[kinds[path]](
            path, batch, templates
        )
    rows = load_benchmark(benchmark, mirror)
    with store.session() as session:
        from arena.benchmarks import insert_prompts

        batch.report.count_rows("prompts", len(rows), insert_prompts(session, rows))
        pids = prompt_ids(session, benchmark)
        models = {m for m, _ in batch.answers} | {m for m, _ in batch.needed}
        cids = ensure_contestants(session, {m: {"kind": "release", "meta": {"source": "fastchat"}} for m in sorted(models)},
                                  batch.report)  # fmt: skip
        gen_rows = []
        for model, key in sorted(set(batch.answers) | batch.needed):
            pid = _prompt_id(pids, benchmark, key)
            if (model, key) in batch.answers:
                gen_rows.append(
                    {"prompt_id": pid, "contestant_id": cids[model], **batch.answers[(model, key)]}
                )
            else:
                gen_rows.append(
                    placeholder_generation(pid, cids[model], None, "fastchat judgments (answer not given)")
                )
        gen_ids = write_generations(session, gen_rows, batch.report)
        for row in batch.judgments:
            pid = _prompt_id(pids, benchmark, row.pop("key"), row["meta"]["source"], row["meta"]["line"])
            m1, m2 = row.pop("models")
            row |= {"prompt_id": pid, "generation1_id": gen_ids[(pid, cids[m1])],
                    "generation2_id": gen_ids[(pid, cids[m2])]}  # fmt: skip
        write_judgments(session, batch.judgments, batch.report, batch.tally)
    batch.report.notes = batch.tally.notes()
    batch.report.seconds = time.perf_counter() - started
    print(batch.report.summary())
    log.debug("every note:\n%s", "\n".join(batch.report.notes))
    return batch.report


def _prompt_id(
    pids: dict[str, int], benchmark: str, key: str, source: str | None = None, line: int | None = None
) -> int:
    if key not in pids:
        raise BenchmarkFileError(source or benchmark, line, "question_id",
                                 f"question {key!r} is not in benchmark {benchmark!r}: pass --benchmark")  # fmt: skip
    return pids[key]


def _answers(path: Path, batch: _Batch, _templates: dict) -> None:
    for line, rec in read_jsonl(path):
        batch.report.records_read += 1
        key = str(field(rec, "question_id", (int, str), path, line))
        model = field(rec, "model_id", str, path, line)
        choices = field(rec, "choices", list, path, line)
        turns = choices[0].get("turns") if choices and isinstance(choices[0], dict) else None
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise BenchmarkFileError(path, line, "choices", "expected [{'turns': [str, ...]}]")
        batch.answers[(model, key)] = {
            "text": turns[0], "turn_texts": turns, "backend": "fastchat", "external_id": rec.get("answer_id"),
            "meta": {"source": str(path), "model_id": model, "tstamp": rec.get("tstamp")},
        }  # fmt: skip


def _judge(rec: dict[str, Any], path: Path, line: int) -> tuple[str, str]:
    judge = field(rec, "judge", list, path, line)
    if len(judge) != 2 or not all(isinstance(j, str) for j in judge):
        raise BenchmarkFileError(path, line, "judge", "expected [judge model, prompt name]")
    return judge[0], judge[1]


def _add(batch: _Batch, key: str, models: tuple[str, str], fields: dict[str, Any]) -> None:
    batch.needed.update((m, key) for m in models)
    batch.report.unparsed += fields["status"] == "unparsed"
    batch.judgments.append({"key": key, "models": models, **fields})


def _turn(rec: dict[str, Any], prompt_name: str, path: Path, line: int) -> int:
    """The record's turn (FastChat omits it only in old files: turn 1), checked against its prompt."""
    turn = rec.get("turn", 1)
    if turn not in (1, 2) or isinstance(turn, bool):
        raise BenchmarkFileError(path, line, "turn", f"expected 1 or 2, got {turn!r}")
    if (turn == 2) != prompt_name.endswith("-multi-turn"):
        raise BenchmarkFileError(
            path,
            line,
            "turn",
            f"turn {turn} with judge prompt {prompt_name!r}: turn 2 uses the *-multi-turn ones",
        )
    return turn


def _pairwise(path: Path, batch: _Batch, templates: dict) -> None:
    for line, rec in read_jsonl(path):
        batch.report.records_read += 1
        key = str(field(rec, "question_id", (int, str), path, line))
        m1, m2 = field(rec, "model_1", str, path, line), field(rec, "model_2", str, path, line)
        judge, prompt_name = _judge(rec, path, line)
        turn = _turn(rec, prompt_name, path, line)
        for game, first, second in (("g1", m1, m2), ("g2", m2, m1)):
            winner = field(rec, f"{game}_winner", str, path, line)
            if winner in ("model_1", "model_2"):
                verdict = "1" if (m1 if winner == "model_1" else m2) == first else "2"
            else:
                verdict = "tie" if winner == "tie" else None
            _add(batch, key, (first, second), {
                "judge": judge, "template_id": f"fastchat-{prompt_name}",
                "template_hash": template_hash(prompt_name, templates), "turn": turn, "verdict": verdict,
                "status": "ok" if verdict else "unparsed", "raw": rec.get(f"{game}_judgment"),
                "meta": {"source": str(path), "line": line, "game": game, "winner": winner},
            })  # fmt: skip


def _single(path: Path, batch: _Batch, templates: dict) -> None:
    for line, rec in read_jsonl(path):
        batch.report.records_read += 1
        key = str(field(rec, "question_id", (int, str), path, line))
        model = field(rec, "model", str, path, line)
        score = field(rec, "score", (int, float), path, line)
        judge, prompt_name = _judge(rec, path, line)
        turn = _turn(rec, prompt_name, path, line)
        ok = score != -1
        _add(batch, key, (model, model), {
            "judge": judge, "template_id": f"fastchat-{prompt_name}",
            "template_hash": template_hash(prompt_name, templates), "turn": turn, "verdict": None,
            "score1": float(score) if ok else None, "status": "ok" if ok else "unparsed",
            "raw": rec.get("judgment"), "meta": {"source": str(path), "line": line, "mode": "single"},
        })  # fmt: skip


def _battles(path: Path, batch: _Batch, _templates: dict) -> None:
    for line, rec in read_battles(path):
        batch.report.records_read += 1
        key = str(field(rec, "question_id", (int, str), path, line))
        ma, mb = field(rec, "model_a", str, path, line), field(rec, "model_b", str, path, line)
        winner = field(rec, "winner", str, path, line)
        judge = str(field(rec, "judge", str, path, line))
        turn = rec.get("turn", 1)
        if turn not in (1, 2) or isinstance(turn, bool):
            raise BenchmarkFileError(path, line, "turn", f"expected 1 or 2, got {turn!r}")
        for model, conv in ((ma, rec.get("conversation_a")), (mb, rec.get("conversation_b"))):
            texts = [
                m.get("content") for m in conv or [] if isinstance(m, dict) and m.get("role") == "assistant"
            ]
            if texts and all(isinstance(t, str) for t in texts) and (model, key) not in batch.answers:
                batch.answers[(model, key)] = {"text": texts[0], "turn_texts": texts, "backend": "fastchat",
                                               "meta": {"source": str(path), "from": "battle conversation"}}  # fmt: skip
        verdict = BATTLE_VERDICTS.get(winner)
        battle_template = {"format": "fastchat clean_battle", "turn": turn}
        _add(batch, key, (ma, mb), {
            "judge": judge if judge.startswith("gpt") else f"human:{judge}",
            "template_id": f"fastchat-battle-turn{turn}",
            "template_hash": template_hash(f"battle-turn{turn}", {f"battle-turn{turn}": battle_template}),
            "turn": turn, "verdict": verdict, "status": "ok" if verdict else "unparsed", "raw": winner,
            "meta": {"source": str(path), "line": line},
        })  # fmt: skip
