"""The tidy rating table every method returns: one row per model, best first, its header, and Chatbot
Arena's ranks.

Columns: at least ``model, rating, lower, upper, rank, matches`` (plus ``wins, ties, losses`` for
pairwise methods). ``table.attrs["header"]`` says how the table was made: method, parameters, the
interval `lower`/`upper` is, the rank rule, judgments used, judgments excluded because their verdict
was unparsed or errored, models, and the benchmark, judge and template when constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from arena.battles import Battles

RANK_RULE = "1 + models whose lower bound is above this model's upper bound (Chatbot Arena)"


def interval_ranks(table: pd.DataFrame, lower: str = "lower", upper: str = "upper") -> pd.Series:
    """Chatbot Arena ranks: 1 + the number of models whose lower bound is above this one's upper.

    A model ranks below another only when their intervals separate, so overlapping models share a
    rank. A missing interval (online Elo) falls back to the rating itself."""
    lo = table[lower].fillna(table["rating"]).to_numpy()
    hi = table[upper].fillna(table["rating"]).to_numpy()
    return pd.Series(1 + (lo[None, :] > hi[:, None]).sum(axis=1), index=table.index, name="rank")


def pairwise_table(bt: Battles, rating: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> pd.DataFrame:
    m = len(bt.models)
    wins = np.bincount(bt.a, bt.score == 1.0, m) + np.bincount(bt.b, bt.score == 0.0, m)
    ties = np.bincount(bt.a, bt.score == 0.5, m) + np.bincount(bt.b, bt.score == 0.5, m)
    matches = np.bincount(bt.a, minlength=m) + np.bincount(bt.b, minlength=m)
    return pd.DataFrame({
        "model": bt.models, "rating": rating, "lower": lower, "upper": upper,
        "matches": matches, "wins": wins.astype(int), "ties": ties.astype(int),
        "losses": (matches - wins - ties).astype(int),
    })  # fmt: skip


def finish(
    table: pd.DataFrame, bt: Battles, method: str, params: dict[str, Any], interval: str
) -> pd.DataFrame:
    header = header_of(
        bt.considered, method, params, used=len(bt), excluded=bt.excluded, models=len(bt.models)
    )
    header["interval"] = interval
    return ranked(table, header)


def ranked(table: pd.DataFrame, header: dict[str, Any]) -> pd.DataFrame:
    """Best first, with Chatbot Arena's ranks on `lower`/`upper` (see :func:`interval_ranks`)."""
    table = table.sort_values(["rating", "model"], ascending=[False, True], ignore_index=True)
    table.insert(4, "rank", interval_ranks(table))
    header["ranks"] = RANK_RULE
    table.attrs["header"] = header
    return table


def header_of(frame: pd.DataFrame, method: str, params: dict[str, Any], *, used: int, excluded: int,
            models: int) -> dict[str, Any]:  # fmt: skip
    """How a table was made; benchmark, judge and template appear when constant in the frame."""
    header: dict[str, Any] = {"method": method, "params": dict(params)}
    for column in ("benchmark", "judge", "template_id"):
        values = sorted(frame[column].dropna().astype(str).unique()) if column in frame else []
        header[column] = values[0] if len(values) == 1 else (", ".join(values) if values else None)
    header.update({"judgments": len(frame), "used": used, "unparsed_excluded": excluded, "models": models})
    return header
