"""Ratings from judgments: Elo (the QLoRA paper's), online Elo, Bradley-Terry, TrueSkill, relative scores.

Every rating function takes the tidy judgments table of :func:`arena.query.judgments.judgments_frame` and
returns a tidy table, one row per model, sorted best first, with at least ``model, rating, lower,
upper, rank, matches`` (plus ``wins, ties, losses`` for pairwise methods). ``table.attrs["header"]``
says how the table was made: method, parameters, the interval `lower`/`upper` is (for Elo and
Bradley-Terry by default a prompt bootstrap, so it says how much the ranking depends on which
prompts were asked), the rank rule, judgments used, judgments excluded because their verdict was
unparsed or errored, models, and the benchmark, judge and template when constant. Ranks follow
Chatbot Arena: 1 + the number of models whose lower bound is above this model's upper bound.

Verdicts are by slot: ``"1"`` slot 1 won, ``"2"`` slot 2 won, ``"tie"`` and ``"both_bad"`` both
score 0.5. The two orders of a pair are two judgments and so two matches. Judgments whose status is
not ``ok`` are never rated and never silently dropped: they are counted in the header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from arena.battles import battles, require_matches
from arena.bradley_terry import bradley_terry
from arena.elo import elo_ratings, online_elo
from arena.rating_table import finish, pairwise_table
from arena.relative import relative_scores

METHODS = ("elo", "online-elo", "bt", "trueskill", "relative")


def rate(frame: pd.DataFrame, method: str, **params: Any) -> pd.DataFrame:
    """Rate the judgments in `frame` with `method` (one of METHODS) and its keyword parameters."""
    functions: dict[str, Callable[..., pd.DataFrame]] = {
        "elo": elo_ratings,
        "online-elo": online_elo,
        "bt": bradley_terry,
        "trueskill": trueskill_ratings,
        "relative": relative_scores,
    }
    if method not in functions:
        raise ValueError(f"unknown rating method {method!r}: choose one of {', '.join(METHODS)}")
    return functions[method](frame, **params)


def trueskill_ratings(frame: pd.DataFrame, draw_probability: float | None = None) -> pd.DataFrame:
    """TrueSkill (the `trueskill` package) through the matches in the frame's order.

    `rating` is mu, `lower`/`upper` mu -/+ 1.96 sigma, `conservative` mu - 3 sigma. The draw
    probability defaults to the share of ties among the matches (TrueSkill needs it above 0)."""
    import trueskill

    bt = battles(frame)
    require_matches(bt, "trueskill")
    if draw_probability is None:
        draw_probability = float(np.clip((bt.score == 0.5).mean(), 0.01, 0.99))
    env = trueskill.TrueSkill(draw_probability=draw_probability)
    players = [env.create_rating() for _ in bt.models]
    for i, j, s in zip(bt.a.tolist(), bt.b.tolist(), bt.score.tolist(), strict=True):
        if s == 0.0:
            i, j = j, i
        players[i], players[j] = env.rate_1vs1(players[i], players[j], drawn=s == 0.5)
    mu = np.array([p.mu for p in players])
    sigma = np.array([p.sigma for p in players])
    table = pairwise_table(bt, mu, mu - 1.96 * sigma, mu + 1.96 * sigma)
    table["sigma"] = sigma
    table["conservative"] = mu - 3 * sigma
    params = {"draw_probability": round(draw_probability, 4), "mu": env.mu, "sigma": round(env.sigma, 4)}
    interval = "mu ± 1.96 sigma: TrueSkill's posterior after one pass in order; no prompt resampling"
    return finish(table, bt, "trueskill", params, interval)


def win_rate_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Row model's win rate against column model over both orders, ties half; NaN if never met."""
    bt = battles(frame)
    m = len(bt.models)
    won, played = np.zeros((m, m)), np.zeros((m, m))
    np.add.at(won, (bt.a, bt.b), bt.score)
    np.add.at(won, (bt.b, bt.a), 1.0 - bt.score)
    np.add.at(played, (bt.a, bt.b), 1.0)
    played += played.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(played > 0, won / played, np.nan)
    matrix = pd.DataFrame(rates, index=pd.Index(bt.models, name="model"), columns=bt.models)
    order = matrix.mean(axis=1).sort_values(ascending=False).index
    return matrix.loc[order, order]
