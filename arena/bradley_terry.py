"""Bradley-Terry ratings with bootstrap intervals: every round's counts of each kind of match, fitted
together by :mod:`arena.bt_fit`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from arena.battles import (
    Battles,
    battles,
    bootstrap_interval,
    check_bootstrap,
    percentile_interval,
    require_matches,
)
from arena.bt_fit import BT_L2, bt_elo_rounds
from arena.elo_kernel import match_codes
from arena.rating_table import finish, pairwise_table


def bradley_terry(
    frame: pd.DataFrame,
    bootstrap: int = 1000,
    resample: str = "prompt",
    seed: int = 0,
    anchor: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Bradley-Terry maximum likelihood on the Elo scale, with bootstrap percentile intervals.

    Ties (and "both bad") count as half a win to each side, as Chatbot Arena does; the simpler
    choice over Rao-Kupper/Davidson, and it leaves the win/loss likelihood unchanged without ties.
    Ratings are 400·log10 strengths, shifted so that their mean is 1000, or so that `anchor` is
    exactly 1000. `resample="prompt"` (the default) redraws prompts with all their matches, which
    respects that matches on one prompt are not independent (each prompt yields every pair in both
    orders); `resample="battle"` redraws single matches and gives intervals about half as wide as
    the data supports."""
    from tqdm.auto import tqdm

    check_bootstrap(bootstrap, resample)
    bt = battles(frame)
    require_matches(bt, "bt")
    if anchor is not None and anchor not in bt.models:
        raise ValueError(f"anchor model {anchor!r} has no rated match; models: {', '.join(bt.models)}")
    anchor_index = None if anchor is None else bt.models.index(anchor)
    kinds, codes = match_codes(bt.a, bt.b, bt.score)
    observed = np.bincount(codes, minlength=kinds.shape[1]).astype(np.float64)
    point = bt_elo_rounds(kinds, observed[None], len(bt.models), anchor_index)[0]
    counts = _bootstrap_counts(bt, kinds, codes, observed, bootstrap, resample, np.random.default_rng(seed))
    with tqdm(total=bootstrap, desc="bt", disable=not progress) as bar:
        draws = bt_elo_rounds(kinds, counts, len(bt.models), anchor_index, bar)
    lower, upper = percentile_interval(draws, point)
    table = pairwise_table(bt, point, lower, upper)
    params = {"bootstrap": bootstrap, "resample": resample, "seed": seed, "anchor": anchor or "mean 1000",
              "ties": "half win each", "l2": BT_L2}  # fmt: skip
    return finish(table, bt, "bt", params, bootstrap_interval(bootstrap, resample))


def _bootstrap_counts(
    bt: Battles,
    kinds: np.ndarray,
    codes: np.ndarray,
    observed: np.ndarray,
    bootstrap: int,
    resample: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """How often each kind of match is drawn in each bootstrap round: (rounds, kinds).

    Redrawing battles is a multinomial over match kinds; redrawing prompts weighs each prompt's
    kind counts by how often the prompt is drawn. Either way no round touches single matches."""
    if resample == "battle":
        return rng.multinomial(len(bt), observed / len(bt), size=bootstrap).astype(np.float64)
    n_prompts = int(bt.prompt.max()) + 1
    per_prompt = np.zeros((n_prompts, kinds.shape[1]))
    np.add.at(per_prompt, (bt.prompt, codes), 1.0)
    return rng.multinomial(n_prompts, np.full(n_prompts, 1.0 / n_prompts), size=bootstrap) @ per_prompt
