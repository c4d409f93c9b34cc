"""The QLoRA paper's Elo (the mean of online Elo over seeded random orderings, with a prompt-bootstrap
interval) and plain online Elo in the judgments' order.

The orderings are played by :mod:`arena.elo_kernel`; `elo_python` is the plain loop it must match.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from arena.battles import (
    Battles,
    battles,
    check_bootstrap,
    percentile_interval,
    replicate_matches,
    require_matches,
)
from arena.elo_kernel import elo_orderings
from arena.rating_table import finish, pairwise_table


def elo_ratings(
    frame: pd.DataFrame,
    k: float = 32.0,
    orderings: int = 10_000,
    seed: int = 0,
    initial: float = 1000.0,
    bootstrap: int = 100,
    resample: str = "prompt",
    replicate_orderings: int = 100,
    progress: bool = False,
) -> pd.DataFrame:
    """The QLoRA paper's Elo: online updates over `orderings` seeded random orders, averaged.

    `lower`/`upper` are a 95% bootstrap percentile interval over `bootstrap` replicates: each
    redraws prompts (or battles) with replacement and averages `replicate_orderings` orderings of
    the redrawn matches, so the interval says how much the rating depends on which prompts were
    asked, and ranks follow it. The two columns that describe orderings only are diagnostics:
    `spread_lower`/`spread_upper`, the 2.5-97.5 percentiles of single orderings (match-order noise,
    which does not shrink with more data), and `mean_error`, the half-width of the 95% interval of
    the mean over orderings (the paper's "±"; it shrinks with more orderings, not with more data)."""
    if orderings < 1 or replicate_orderings < 1:
        raise ValueError(f"orderings must be at least 1, not {min(orderings, replicate_orderings)}")
    check_elo_parameters(k, initial)
    check_bootstrap(bootstrap, resample)
    bt = battles(frame)
    require_matches(bt, "elo")
    final = elo_orderings(bt.a, bt.b, bt.score, len(bt.models), k, orderings, seed, initial, progress)
    mean = final.mean(axis=0)
    draws = _elo_bootstrap(bt, k, initial, bootstrap, resample, replicate_orderings, seed, progress)
    lower, upper = percentile_interval(draws, mean)
    table = pairwise_table(bt, mean, lower, upper)
    spread = np.percentile(final, [2.5, 97.5], axis=0)
    table["spread_lower"], table["spread_upper"] = spread[0], spread[1]
    table["mean_error"] = 1.96 * final.std(axis=0, ddof=1) / math.sqrt(orderings) if orderings > 1 else 0.0
    params = {"k": k, "orderings": orderings, "seed": seed, "initial": initial, "bootstrap": bootstrap,
              "resample": resample, "replicate_orderings": replicate_orderings}  # fmt: skip
    interval = (
        f"95% {resample} bootstrap, {bootstrap} replicates, each the mean of {replicate_orderings} orderings"
        if bootstrap
        else "none (bootstrap 0): ranks follow the rating"
    )
    return finish(table, bt, "elo", params, interval)


def _elo_bootstrap(
    bt: Battles,
    k: float,
    initial: float,
    bootstrap: int,
    resample: str,
    replicate_orderings: int,
    seed: int,
    progress: bool = False,
) -> np.ndarray:
    """Mean Elo over `replicate_orderings` orderings of each bootstrap replicate's matches:
    shape (bootstrap, models). Each replicate is one call of :func:`elo_orderings`."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng([seed, 1])
    draws = np.empty((bootstrap, len(bt.models)))
    for i in tqdm(range(bootstrap), desc="elo bootstrap", disable=not progress):
        idx = replicate_matches(bt, resample, rng)
        seed_i = int(rng.integers(2**63))
        final = elo_orderings(
            bt.a[idx], bt.b[idx], bt.score[idx], len(bt.models), k, replicate_orderings, seed_i, initial
        )
        draws[i] = final.mean(axis=0)
    return draws


def elo_python(
    a: np.ndarray, b: np.ndarray, score: np.ndarray, n_models: int, k: float, initial: float
) -> np.ndarray:
    """One ordering of online Elo as a plain Python loop: the reference the vectorised one must
    match, and the baseline of bench/ratings.py."""
    ratings = [float(initial)] * n_models
    for i, j, s in zip(a.tolist(), b.tolist(), score.tolist(), strict=True):
        expected = 1.0 / (1.0 + 10.0 ** ((ratings[j] - ratings[i]) / 400.0))
        ratings[i] += k * (s - expected)
        ratings[j] -= k * (s - expected)
    return np.array(ratings)


def check_elo_parameters(k: float, initial: float) -> None:
    """K and the starting rating come from users (`--k`, `--initial`): a K that is not a positive
    number, or a start that is not finite, would give NaN ratings or overflow, not an error."""
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"Elo's K must be a positive number, not {k}")
    if not math.isfinite(initial):
        raise ValueError(f"Elo's starting rating must be a finite number, not {initial}")


def online_elo(frame: pd.DataFrame, k: float = 32.0, initial: float = 1000.0) -> pd.DataFrame:
    """Elo updated once through the matches in the frame's order (no interval: one pass has none;
    `lower`/`upper` are NaN and ranks follow the rating)."""
    check_elo_parameters(k, initial)
    bt = battles(frame)
    require_matches(bt, "online-elo")
    final = elo_python(bt.a, bt.b, bt.score, len(bt.models), k, initial)
    table = pairwise_table(bt, final, np.full_like(final, np.nan), np.full_like(final, np.nan))
    return finish(
        table, bt, "online-elo", {"k": k, "initial": initial}, "none (one pass): ranks follow the rating"
    )
