"""The leaderboards a bundle reproduces, computed from the exported rows only (never the store),
so anyone holding the bundle gets the same tables from the same rows."""

from __future__ import annotations

from typing import Any

import pandas as pd

from arena.query.vocabulary import is_human
from arena.release.config import ReleaseConfig
from arena.release.schema import SCHEMA

LEADERBOARD_METHODS = ("elo", "bt")


def judgments_table(rows: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """Bundle judgments in the shape of :func:`arena.query.judgments.judgments_frame`, for arena.ratings."""
    frame = pd.DataFrame(rows["judgments"], columns=[c.name for c in SCHEMA["judgments"]])
    frame = frame.rename(columns={"score1": "score_1", "score2": "score_2", "generation1_id": "generation_1",
                                  "generation2_id": "generation_2"})  # fmt: skip
    split = frame["prompt_id"].str.split("/", n=1, expand=True) if len(frame) else None
    frame["benchmark"] = split[0] if split is not None else pd.Series(dtype=str)
    frame["prompt_key"] = split[1] if split is not None else pd.Series(dtype=str)
    return frame


def judge_groups(judges: pd.Series) -> dict[str, pd.Series]:
    """Each model judge on its own, and every `human:` annotator pooled as `human`."""
    human = is_human(judges)
    groups = {name: judges.eq(name) for name in sorted(set(judges[~human]))}
    if human.any():
        groups["human"] = human
    return groups


def leaderboards(rows: dict[str, list[dict[str, Any]]], config: ReleaseConfig) -> dict[str, pd.DataFrame]:
    """The rating table (arena.ratings.rate) of each benchmark, judge group, template and method,
    named `<benchmark>.<judge>.<template>.<method>`; each carries its header (parameters, counts).

    Unparsed judgments are left out of the ratings and counted in the header."""
    from arena.ratings import rate

    frame = judgments_table(rows)
    rated = frame["status"].eq("ok") & frame["verdict"].isin(["1", "2", "tie", "both_bad"])
    params = {
        "elo": {
            "orderings": config.leaderboard_orderings,
            "seed": config.seed,
            "bootstrap": min(100, config.leaderboard_orderings),
            "replicate_orderings": min(100, config.leaderboard_orderings),
        },  # fmt: skip
        "bt": {"bootstrap": config.leaderboard_orderings, "seed": config.seed},
    }
    out = {}
    for (benchmark, template), on_bench in frame.groupby(["benchmark", "template_id"], sort=True):
        for judge, mask in judge_groups(on_bench["judge"]).items():
            if not rated[on_bench.index[mask]].any():
                continue
            subset = on_bench[mask].reset_index(drop=True)
            for method in LEADERBOARD_METHODS:
                name = ".".join(_file_safe(part) for part in (benchmark, judge, template, method))
                out[name] = rate(subset, method, **params[method])
    return out


def _file_safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
