"""Hand-made judgments for the ratings and leaderboard tests, as frames or in a real store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from arena.query.judgments import JUDGMENT_COLUMNS
from arena.query.writes import ids_by_key, insert_ignore
from arena.store import Contestant, Generation, Judgment, Prompt, Store

Match = tuple[str, str, str, str]
"""(prompt key, model in slot 1, model in slot 2, verdict); verdict None means unparsed."""


def frame(
    matches: Iterable[Match | dict[str, Any]], judge: str = "gpt-4", template: str = "pairwise"
) -> pd.DataFrame:
    """A judgments frame shaped like `judgments_frame`'s, one row per match. A dict row may set
    any column (score_1, score_2, status, template_id, judge)."""
    rows = []
    for n, match in enumerate(matches):
        row = (
            dict(match)
            if isinstance(match, dict)
            else dict(zip(("prompt_key", "model_1", "model_2", "verdict"), match, strict=True))
        )
        base = {
            "judgment_id": n + 1, "benchmark": "vicuna", "category": "generic", "generation_1": 2 * n + 1,
            "generation_2": 2 * n + 2, "judge": judge, "template_id": template, "template_hash": template * 2,
            "score_1": None, "score_2": None, "run_id": None, "created_at": None, "turn": 1,
            "status": "ok" if row.get("verdict") is not None else "unparsed",
        }  # fmt: skip
        rows.append({**base, **row})
    return pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)


def simulated(strengths: dict[str, float], n: int, seed: int = 0, prompts: int = 40) -> list[Match]:
    """`n` Bradley-Terry battles between random pairs with natural-log `strengths`, no ties."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    out = []
    for i in range(n):
        m1, m2 = rng.choice(names, 2, replace=False)
        p1 = 1 / (1 + np.exp(strengths[m2] - strengths[m1]))
        out.append((f"q{i % prompts}", str(m1), str(m2), "1" if rng.random() < p1 else "2"))
    return out


def store_judgments(store: Store, matches: Sequence[dict[str, Any]], benchmark: str = "vicuna") -> None:
    """Insert judgments given as dicts (prompt_key, model_1, model_2, verdict, and optionally
    judge, status, score_1, score_2, template_id) with the prompts, models and answers they need."""
    keys = sorted({m["prompt_key"] for m in matches})
    models = sorted({m[s] for m in matches for s in ("model_1", "model_2")})
    with store.session() as session:
        insert_ignore(
            session, Prompt, [{"benchmark": benchmark, "key": k, "turns": [f"Question {k}?"]} for k in keys]
        )
        insert_ignore(session, Contestant, [{"name": m} for m in models])
        pids = {k: i for (b, k), i in ids_by_key(session, Prompt).items() if b == benchmark}
        cids = ids_by_key(session, Contestant)
        insert_ignore(session, Generation, [
            {"prompt_id": pids[k], "contestant_id": cids[m], "text": f"{m} on {k}"} for k in keys for m in models
        ])  # fmt: skip
        gids = ids_by_key(session, Generation)
        rows = []
        for m in matches:
            pid = pids[m["prompt_key"]]
            template = m.get("template_id", "pairwise")
            rows.append({
                "judge": m.get("judge", "gpt-4"), "template_id": template, "template_hash": template * 2,
                "prompt_id": pid, "generation1_id": gids[(pid, cids[m["model_1"]])],
                "generation2_id": gids[(pid, cids[m["model_2"]])], "verdict": m.get("verdict"),
                "score1": m.get("score_1"), "score2": m.get("score_2"),
                "status": m.get("status", "ok" if m.get("verdict") else "unparsed"), "raw": "raw judge output",
            })  # fmt: skip
        insert_ignore(session, Judgment, rows)
