"""Stored MT-bench judgments in FastChat's model_judgment format, and FastChat's result tables.

FastChat (fastchat/llm_judge) writes one pairwise record per question, pair of models and turn, with
both slot orders in it (`g1`: model_1 shown first, `g2`: model_2 first), and one single-grading
record per question, model and turn; `show_result.py` prints mean scores for the first turn, the
second turn and their average, and pairwise win rates where a game is a win only when both orders
agree (a tie or two orders that disagree count as a tie). :func:`export_records` turns the store's
judgments into those records (a pair judged in one order only has no FastChat record and is
counted as such) and :func:`single_tables` / :func:`pairwise_table` compute the tables, per turn
and overall, so a result read here can be set beside FastChat's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from arena.query.judgments import judgment_details
from arena.query.vocabulary import is_human
from arena.store import Store

SINGLE_TEMPLATES = ("mt-bench-single", "fastchat-single")
"""Template id prefixes of single-answer grading (the project's and FastChat's imported ones)."""


@dataclass
class Records:
    """FastChat model_judgment records, and what could not become one."""

    pair: list[dict[str, Any]] = field(default_factory=list)
    single: list[dict[str, Any]] = field(default_factory=list)
    one_order_only: int = 0
    """Pairwise judgments whose other slot order is not stored: FastChat needs both."""


def _question_id(key: str) -> int | str:
    return int(key) if key.isdigit() else key


def _prompt_name(row: pd.Series) -> str:
    """FastChat's judge prompt name: recorded at judging time, else from an imported template id."""
    name = (row.meta or {}).get("prompt_name")
    if name:
        return name
    return row.template_id.removeprefix("fastchat-")


def _winner(row: pd.Series) -> str | None:
    """The winning model of one stored game, "tie", or None when it has no verdict."""
    if row.status != "ok" or row.verdict is None:
        return None
    return {"1": row.model_1, "2": row.model_2}.get(row.verdict, "tie")


def export_records(store: Store, benchmark: str = "mt-bench", judge: str | None = None) -> Records:
    """The stored judgments of `benchmark` (by `judge`, else every model judge) as FastChat records."""
    frame = judgment_details(store, benchmark=benchmark, judge=judge)
    frame = frame[~is_human(frame.judge)]
    records = Records()
    single = frame.template_id.str.startswith(SINGLE_TEMPLATES)
    _single_records(frame[single], records)
    _pair_records(frame[~single], records)
    return records


def _single_records(frame: pd.DataFrame, records: Records) -> None:
    seen: set[tuple] = set()
    for row in frame.itertuples(index=False):
        graded = [(row.model_1, row.score_1)]
        if row.generation_1 != row.generation_2:  # the project grades both answers of a match
            graded.append((row.model_2, row.score_2))
        for model, score in graded:
            key = (row.prompt_key, model, row.turn, row.judge, row.template_hash)
            if key in seen:  # the same answer graded again in another match: FastChat grades it once
                continue
            seen.add(key)
            ok = row.status == "ok" and score is not None and not pd.isna(score)
            records.single.append({
                "question_id": _question_id(row.prompt_key), "model": model,
                "judge": [row.judge, _prompt_name(row)], "user_prompt": "", "judgment": row.raw or "",
                "score": float(score) if ok else -1, "turn": int(row.turn),
                "tstamp": row.created_at.timestamp() if row.created_at is not None else None,
            })  # fmt: skip


def _pair_records(frame: pd.DataFrame, records: Records) -> None:
    frame = frame.assign(pair=[tuple(sorted(p)) for p in zip(frame.model_1, frame.model_2, strict=True)])
    for _key, games in frame.groupby(["prompt_key", "judge", "template_hash", "pair"], sort=False):
        rows = list(games.itertuples(index=False))
        firsts = {row.model_1: row for row in rows}
        if len(firsts) != 2:
            records.one_order_only += len(rows)
            continue
        g1 = next((r for r in rows if (r.meta or {}).get("game") == "g1"), rows[0])  # as imported
        g2 = firsts[g1.model_2]
        model_1, model_2 = g1.model_1, g1.model_2
        as_slot = {model_1: "model_1", model_2: "model_2", "tie": "tie", None: "error"}
        records.pair.append({
            "question_id": _question_id(g1.prompt_key), "model_1": model_1, "model_2": model_2,
            "g1_winner": as_slot[_winner(g1)], "g2_winner": as_slot[_winner(g2)],
            "judge": [g1.judge, _prompt_name(g1)], "g1_user_prompt": "", "g1_judgment": g1.raw or "",
            "g2_user_prompt": "", "g2_judgment": g2.raw or "", "turn": int(g1.turn),
            "tstamp": g1.created_at.timestamp() if g1.created_at is not None else None,
        })  # fmt: skip


def write_records(records: Records, out_dir: Path, judge_name: str) -> list[Path]:
    """`<judge>_pair.jsonl` and `<judge>_single.jsonl` as FastChat names them (only non-empty ones)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in judge_name)
    for kind, rows in (("pair", records.pair), ("single", records.single)):
        if rows:
            path = out_dir / f"{safe}_{kind}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            written.append(path)
    return written


def single_tables(records: Sequence[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """FastChat's `show_result.py --mode single`: mean score by model for each turn, then the
    average over all rated turns; unparsed scores (-1) left out."""
    frame = pd.DataFrame(list(records), columns=["model", "score", "turn"])
    frame = frame[frame.score != -1]
    tables = {}
    for turn, title in ((1, "First turn"), (2, "Second turn")):
        rows = frame[frame.turn == turn]
        if not rows.empty:
            tables[title] = _mean_scores(rows)
    tables["Average"] = _mean_scores(frame)
    return tables


def _mean_scores(rows: pd.DataFrame) -> pd.DataFrame:
    table = rows.groupby("model").score.agg(["mean", "count"]).rename(columns={"mean": "score"})
    return table.sort_values("score", ascending=False)


def pairwise_table(
    records: Sequence[dict[str, Any]], baseline: str | None = None, turn: int | None = None
) -> pd.DataFrame:
    """FastChat's `show_result.py --mode pairwise-all` (or `pairwise-baseline` with `baseline`):
    records with an error in either order are dropped; both orders agreeing is a win, anything
    else a tie; sorted by win_rate_adjusted (a tie counts half). `turn` keeps one turn."""
    tally: dict[str, dict[str, int]] = {}
    for rec in records:
        if "error" in (rec["g1_winner"], rec["g2_winner"]) or (turn is not None and rec["turn"] != turn):
            continue
        if baseline is not None and baseline not in (rec["model_1"], rec["model_2"]):
            continue
        models = (rec["model_1"], rec["model_2"])
        if rec["g1_winner"] == "tie" or rec["g1_winner"] != rec["g2_winner"]:
            outcomes = dict.fromkeys(models, "tie")
        else:
            winner = rec[rec["g1_winner"]]
            outcomes = {m: "win" if m == winner else "loss" for m in models}
        for model, outcome in outcomes.items():
            counts = tally.setdefault(model, {"win": 0, "loss": 0, "tie": 0})
            counts[outcome] += 1
    table = pd.DataFrame.from_dict(tally, orient="index", columns=["win", "loss", "tie"])
    table.index.name = "model"
    if baseline is not None:
        table = table[table.index != baseline]
    games = table.win + table.loss + table.tie
    table["win_rate"] = table.win / games
    table["loss_rate"] = table.loss / games
    table["win_rate_adjusted"] = (table.win + 0.5 * table.tie) / games
    return table.sort_values("win_rate_adjusted", ascending=False)


def show(records: Records, baseline: str | None = None) -> str:
    """The tables as FastChat prints them: single grading per turn and average; pairwise per turn
    and over both turns."""
    parts = []
    if records.single:
        for title, table in single_tables(records.single).items():
            parts.append(f"########## {title} ##########\n{table.round(4).to_string()}")
    if records.pair:
        mode = f"pairwise-baseline ({baseline})" if baseline else "pairwise-all"
        turns = sorted({r["turn"] for r in records.pair})
        for turn, title in [*((t, f"turn {t}") for t in turns), (None, "both turns")]:
            table = pairwise_table(records.pair, baseline, turn)
            parts.append(f"########## {mode}, {title} ##########\n{table.round(4).to_string()}")
    if records.one_order_only:
        parts.append(
            f"({records.one_order_only} pairwise judgments have no other slot order and are left out)"
        )
    return "\n\n".join(parts) + "\n"
