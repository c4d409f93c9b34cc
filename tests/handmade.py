"""Hand-made arenas for the release and analysis tests: every figure they lead to is known."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from arena.query.judgments import read_judgments
from arena.query.runs import start_run
from arena.query.writes import ids_by_key, insert_ignore
from arena.store import Contestant, Generation, Judgment, Prompt, Store, Tag

T0 = dt.datetime(2024, 5, 1, 12, 0, 0)


def add_judgments(
    store: Store,
    rows: Iterable[tuple[str, str, str, str, str]],
    benchmark: str = "vicuna",
    texts: Mapping[tuple[str, str], str] | None = None,
    categories: Mapping[str, str] | None = None,
    template: str = "pairwise-v1",
    run_config: dict[str, Any] | None = None,
) -> None:
    """Store judgments given as (prompt key, model in slot 1, model in slot 2, judge, verdict),
    with the prompts, contestants and generations they need (answer text `"<model> on <key>"`
    unless `texts` says otherwise). Raw judge output is `"reason: <model> <verdict>"`."""
    rows = list(rows)
    texts = texts or {}
    categories = categories or {}
    keys = sorted({r[0] for r in rows})
    models = sorted({m for r in rows for m in r[1:3]})
    with store.session() as session:
        run = start_run(session, "tournament", f"{benchmark}-{template}", run_config or {"temperature": 0.2})
        run.started_at = T0
        insert_ignore(session, Prompt, [
            {"benchmark": benchmark, "key": k, "category": categories.get(k, "generic"), "turns": [f"Question {k}?"],
             "source": "qlora-eval/prompts/vicuna_questions.jsonl"}
            for k in keys
        ])  # fmt: skip
        insert_ignore(session, Contestant, [{"name": m, "created_at": T0} for m in models])
        pids = {k: i for (b, k), i in ids_by_key(session, Prompt).items() if b == benchmark}
        cids = ids_by_key(session, Contestant)
        insert_ignore(session, Generation, [
            {"prompt_id": pids[k], "contestant_id": cids[m], "text": texts.get((k, m), f"{m} on {k}"),
             "params": {"temperature": 0.7, "top_p": 0.9}, "backend": "release", "created_at": T0}
            for k in keys for m in models
        ])  # fmt: skip
        gids = ids_by_key(session, Generation)
        insert_ignore(session, Judgment, [
            {"judge": judge, "template_id": template, "template_hash": template * 2, "prompt_id": pids[k],
             "generation1_id": gids[(pids[k], cids[m1])], "generation2_id": gids[(pids[k], cids[m2])],
             "verdict": verdict, "status": "ok", "raw": f"reason: {m1 if verdict == '1' else m2} {verdict}",
             "run_id": run.id, "created_at": T0 + dt.timedelta(seconds=n)}
            for n, (k, m1, m2, judge, verdict) in enumerate(rows)
        ])  # fmt: skip


def tag(store: Store, judge: str, key: str, m1: str, m2: str, annotator: str, note: str) -> None:
    """Tag the judgment of (key, m1 in slot 1, m2 in slot 2) by `judge` as a lemon."""
    frame = read_judgments(store, judge=judge)
    match = frame[(frame.prompt_key == key) & (frame.model_1 == m1) & (frame.model_2 == m2)]
    with store.session() as session:
        insert_ignore(session, Tag, [{"judgment_id": int(match.judgment_id.iloc[0]), "annotator": annotator,
                                      "tag": "lemon", "note": note, "created_at": T0}])  # fmt: skip


def both_orders(
    key: str, a: str, b: str, judge: str, first: str, second: str
) -> list[tuple[str, str, str, str, str]]:
    """A pair judged in both orders: `first` is the verdict with a in slot 1, `second` with b in slot 1."""
    return [(key, a, b, judge, first), (key, b, a, judge, second)]


def make_placeholders(store: Store, answers: Iterable[tuple[str, str]]) -> list[int]:
    """Turn the answers given as (prompt key, model) into the placeholders an import makes for
    answers a release did not publish (empty text, `text_missing`); returns their generation ids."""
    from sqlalchemy import select

    from arena.imports import placeholder_generation

    ids = []
    with store.session() as session:
        for key, model in answers:
            generation = session.scalars(
                select(Generation)
                .join(Prompt, Prompt.id == Generation.prompt_id)
                .join(Contestant, Contestant.id == Generation.contestant_id)
                .where(Prompt.key == key, Contestant.name == model)
            ).one()
            row = placeholder_generation(generation.prompt_id, generation.contestant_id, None, "release")
            generation.text, generation.meta = row["text"], row["meta"]
            ids.append(generation.id)
    return ids
