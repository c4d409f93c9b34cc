"""Lemon-picking: find the judgments worth a person's look, show them in full, tag and export them.

Works on the tidy judgments table of :func:`arena.query.judgments.judgments_frame`, so
the filters and shortcuts are plain pandas and can be tested on hand-made tables. The shortcuts:

- **upsets**: a lower-rated model beat a higher-rated one, biggest rating gap first;
- **position flips**: the same judge and template judged both orders of a pair of answers and the
  winning *answer* changed with the order (the judge followed the position, not the content);
- **disagreements**: a person and a model judge (GPT-4) judged the same pair of answers and chose
  differently (tie and "both bad" count as the same "no winner", since GPT-4 templates have no
  "both bad").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from arena.query.generations import generations_by_id
from arena.query.judgments import judgment_exists, judgments_by_id
from arena.query.prompts import prompts_by_id
from arena.query.tags import put_tag, tags_of
from arena.query.vocabulary import is_human
from arena.votes import answer_text

OUTCOMES = ("win", "loss", "tie", "both_bad")
"""Outcome filter values, from the point of view of the chosen model (slot 1 when none is chosen)."""

JUDGE_GROUPS = {"all": None, "GPT-4 (model judges)": "model", "humans": "human"}
"""Judge filter labels: every judge, model judges only (GPT-4 and any other endpoint), people only."""

SHORTCUTS = ("all", "biggest upsets", "position flips", "GPT-4 vs human disagreements")
TAGS = ("lemon", "cherry")
DETAIL_COLUMNS = [
    "judgment_id", "judge", "template_id", "verdict", "scores", "status", "benchmark", "prompt_key",
    "category", "context", "turns", "answer_1", "answer_2", "rationale", "meta", "tags",
]  # fmt: skip


def filter_by_judge(frame: pd.DataFrame, group: str | None) -> pd.DataFrame:
    """Keep one judge group (a :data:`JUDGE_GROUPS` label) or one exact judge name."""
    if not group or group == "all":
        return frame
    kind = JUDGE_GROUPS.get(group)
    if kind == "human":
        return frame[is_human(frame["judge"])]
    if kind == "model":
        return frame[~is_human(frame["judge"])]
    return frame[frame["judge"] == group]


def outcome_for(frame: pd.DataFrame, model: str | None = None) -> pd.Series:
    """Each judgment's outcome for `model` (for slot 1 when no model is given): win/loss/tie/both_bad."""
    as_slot1 = {"1": "win", "2": "loss", "tie": "tie", "both_bad": "both_bad"}
    as_slot2 = {"1": "loss", "2": "win", "tie": "tie", "both_bad": "both_bad"}
    slot2 = frame["model_2"].eq(model) & frame["model_1"].ne(model) if model else False
    out = frame["verdict"].map(as_slot1)
    return out.where(~slot2, frame["verdict"].map(as_slot2))


def filter_judgments(
    frame: pd.DataFrame,
    benchmark: str | None = None,
    category: str | None = None,
    model: str | None = None,
    opponent: str | None = None,
    outcome: str | None = None,
    judge: str | None = None,
) -> pd.DataFrame:
    """The judgments matching every given filter; `opponent` and `outcome` are relative to `model`."""
    keep = pd.Series(True, index=frame.index)
    if benchmark:
        keep &= frame["benchmark"].eq(benchmark)
    if category:
        keep &= frame["category"].eq(category)
    if model:
        keep &= frame["model_1"].eq(model) | frame["model_2"].eq(model)
    if opponent:
        if model:
            keep &= (frame["model_1"].eq(model) & frame["model_2"].eq(opponent)) | (
                frame["model_2"].eq(model) & frame["model_1"].eq(opponent)
            )
        else:
            keep &= frame["model_1"].eq(opponent) | frame["model_2"].eq(opponent)
    if outcome:
        keep &= outcome_for(frame, model).eq(outcome)
    return filter_by_judge(frame[keep], judge).reset_index(drop=True)


def upsets(frame: pd.DataFrame, ratings: Mapping[str, float]) -> pd.DataFrame:
    """Judgments a lower-rated model won against a higher-rated one, the largest gap first."""
    decided = frame[frame["status"].eq("ok") & frame["verdict"].isin(["1", "2"])].copy()
    first_won = decided["verdict"].eq("1")
    decided["winner"] = decided["model_1"].where(first_won, decided["model_2"])
    decided["loser"] = decided["model_2"].where(first_won, decided["model_1"])
    decided["gap"] = decided["loser"].map(ratings) - decided["winner"].map(ratings)
    found = decided[decided["gap"] > 0]
    return found.sort_values(["gap", "judgment_id"], ascending=[False, True]).reset_index(drop=True)


def _canonical(frame: pd.DataFrame, collapse_ties: bool) -> pd.DataFrame:
    """Each judgment keyed by its unordered pair of answers (low, high generation id), with the
    outcome said of the answers: 'low', 'high', 'tie' or 'both_bad' ('tie' for both if collapsed)."""
    out = frame[frame["status"].eq("ok") & frame["verdict"].isin(["1", "2", "tie", "both_bad"])].copy()
    swapped = out["generation_1"] > out["generation_2"]
    out["low"] = out[["generation_1", "generation_2"]].min(axis=1)
    out["high"] = out[["generation_1", "generation_2"]].max(axis=1)
    by_slot = out["verdict"].map({"1": "first", "2": "second"}).fillna(out["verdict"])
    first_is_low = by_slot.map({"first": "low", "second": "high"})
    first_is_high = by_slot.map({"first": "high", "second": "low"})
    out["answer_outcome"] = first_is_low.where(~swapped, first_is_high).fillna(out["verdict"])
    if collapse_ties:
        out["answer_outcome"] = out["answer_outcome"].replace({"both_bad": "tie"})
    return out


def position_flips(frame: pd.DataFrame) -> pd.DataFrame:
    """Both judgments of every pair whose verdict changed when the order was swapped (same judge and
    template); rows of one flip share a `flip` number and sit next to each other."""
    canon = _canonical(frame, collapse_ties=False)
    keys = ["judge", "template_hash", "low", "high"]
    both_orders = canon.groupby(keys)["generation_1"].transform("nunique").eq(2)
    differs = canon.groupby(keys)["answer_outcome"].transform("nunique").gt(1)
    flips = canon[both_orders & differs].sort_values(keys + ["judgment_id"])
    flips["flip"] = flips.groupby(keys, sort=False).ngroup() + 1
    return flips.drop(columns=["low", "high", "answer_outcome"]).reset_index(drop=True)


def disagreements(frame: pd.DataFrame) -> pd.DataFrame:
    """Pairs of answers where some person and some model judge chose differently: every judgment of
    such a pair (people and model judges), rows of one pair sharing a `pair` number."""
    canon = _canonical(frame, collapse_ties=True)
    human = is_human(canon["judge"])
    keys = ["low", "high"]
    people = canon[human].groupby(keys)["answer_outcome"].agg(set)
    machines = canon[~human].groupby(keys)["answer_outcome"].agg(set)
    both = people.index.intersection(machines.index)
    clash = [key for key in both if len(people[key] | machines[key]) > 1]
    chosen = canon.set_index(keys).loc[clash].reset_index() if clash else canon.iloc[0:0]
    chosen = chosen.sort_values(keys + ["judgment_id"])
    chosen["pair"] = chosen.groupby(keys, sort=False).ngroup() + 1
    return chosen.drop(columns=["low", "high", "answer_outcome"]).reset_index(drop=True)


def judgment_detail(session: Session, judgment_id: int) -> dict[str, Any]:
    """Everything a person needs to judge the judge: prompt, both answers, the full rationale."""
    found = judgment_details(session, [int(judgment_id)])
    if not found:
        raise KeyError(f"no judgment with id {judgment_id}")
    return found[0]


def judgment_details(session: Session, judgment_ids: Sequence[int]) -> list[dict[str, Any]]:
    """:func:`judgment_detail` for many judgments in a few queries, in the order given."""
    ids = [int(i) for i in judgment_ids]
    judgments = judgments_by_id(session, ids)
    prompts = prompts_by_id(session, {j.prompt_id for j in judgments.values()})
    generation_ids = {g for j in judgments.values() for g in (j.generation1_id, j.generation2_id)}
    answers = {i: answer_text(g) for i, g in generations_by_id(session, generation_ids).items()}
    tags: dict[int, list[dict[str, Any]]] = {i: [] for i in judgments}
    for t in tags_of(session, judgments):
        tags[t.judgment_id].append({"annotator": t.annotator, "tag": t.tag, "note": t.note})
    out = []
    for i in ids:
        if i not in judgments:
            continue
        judgment, prompt = judgments[i], prompts[judgments[i].prompt_id]
        out.append({
            "judgment_id": i, "judge": judgment.judge, "template_id": judgment.template_id,
            "verdict": judgment.verdict, "scores": [judgment.score1, judgment.score2],
            "status": judgment.status, "benchmark": prompt.benchmark, "prompt_key": prompt.key,
            "category": prompt.category, "context": list(prompt.context or []),
            "turns": [str(t) for t in prompt.turns or []],
            "answer_1": answers[judgment.generation1_id], "answer_2": answers[judgment.generation2_id],
            "rationale": judgment.raw or "", "meta": dict(judgment.meta or {}), "tags": tags[i],
        })  # fmt: skip
    return out


def tag_judgment(session: Session, judgment_id: int, annotator: str, tag: str, note: str = "") -> bool:
    """Mark a judgment as a lemon or a cherry; tagging again replaces the note. True if new."""
    if tag not in TAGS:
        raise ValueError(f"unknown tag {tag!r}: expected one of {', '.join(TAGS)}")
    if not judgment_exists(session, judgment_id):
        raise KeyError(f"no judgment with id {judgment_id}")
    return put_tag(session, judgment_id, annotator, tag, note or None)


def export_selection(session: Session, judgment_ids: Sequence[int], path: Path) -> Path:
    """Write the selected judgments in full (texts, rationale, tags) as CSV or JSON, by suffix."""
    rows = judgment_details(session, judgment_ids)
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    elif path.suffix == ".csv":
        flat = pd.DataFrame(rows, columns=DETAIL_COLUMNS)
        for column in ("context", "turns", "scores", "meta", "tags"):
            flat[column] = flat[column].map(lambda v: json.dumps(v, ensure_ascii=False, default=str))
        flat.to_csv(path, index=False)
    else:
        raise ValueError(f"export to .csv or .json, not {path.suffix!r}")
    return path
