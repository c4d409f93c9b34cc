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

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from arena.bt_fit import BT_L2, ELO_SCALE, bt_elo_rounds, fit_bradley_terry  # noqa: F401 (importable here)
from arena.elo_kernel import elo_orderings, match_codes
from arena.query.vocabulary import SLOT1_SCORE

METHODS = ("elo", "online-elo", "bt", "trueskill", "relative")
RESAMPLE_UNITS = ("prompt", "battle")
"""Bootstrap units: a prompt with all its matches (the default), or a single match."""
RANK_RULE = "1 + models whose lower bound is above this model's upper bound (Chatbot Arena)"


@dataclass(frozen=True)
class Battles:
    """Pairwise matches as arrays: slot-1 model, slot-2 model, slot-1 score, prompt (integer codes),
    and the two answers' generation ids."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    prompt: np.ndarray
    generation_1: np.ndarray
    generation_2: np.ndarray
    excluded: int
    """Judgments not rated because their status was `unparsed` or `error`."""
    considered: pd.DataFrame
    """The judgments under the rated templates, whatever their status: what the header describes."""

    def __len__(self) -> int:
        return len(self.a)


def battles(frame: pd.DataFrame) -> Battles:
    """The rated matches of a judgments frame: status `ok` with a pairwise verdict.

    When the frame holds both three-class verdicts and score-pair judgments (the QLoRA release's
    Vicuna folder has pairwise verdicts among 8 models and 1-10 scores against ChatGPT), only the
    three-class ones are matches: the score pairs answer another question (how close to the
    reference) under another template, and mixing them in would add thousands of games against
    the reference to the tournament. A frame
    of score pairs only is rated from the verdicts derived from its scores. `unparsed`/`error`
    judgments are never rated and are counted in `excluded`."""
    ok = frame["status"].eq("ok")
    rated = frame[ok & frame["verdict"].isin(list(SLOT1_SCORE))]
    scored = rated["score_1"].notna() & rated["score_2"].notna()
    if not scored.all() and scored.any():
        rated = rated[~scored]
    considered = frame["template_id"].isin(rated["template_id"].unique()) if len(rated) else ~ok
    # factorised, not mapped through dicts: millions of judgments cost seconds, not minutes
    slots, models = pd.factorize(pd.concat([rated["model_1"], rated["model_2"]]), sort=True)
    verdicts, names = pd.factorize(rated["verdict"])
    return Battles(
        models=[str(m) for m in models],
        a=slots[: len(rated)].astype(np.int64),
        b=slots[len(rated) :].astype(np.int64),
        score=np.array([SLOT1_SCORE[v] for v in names], dtype=np.float64)[verdicts],
        prompt=rated.groupby(["benchmark", "prompt_key"], sort=False, dropna=False)
        .ngroup()
        .to_numpy(np.int64),
        generation_1=rated["generation_1"].to_numpy(),
        generation_2=rated["generation_2"].to_numpy(),
        excluded=int((~ok & considered).sum()),
        considered=frame[considered],
    )


# ---------------------------------------------------------------- Elo


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


def replicate_matches(bt: Battles, resample: str, rng: np.random.Generator) -> np.ndarray:
    """Indices of one bootstrap replicate's matches: `prompt` draws as many prompts as there are,
    with replacement, each with all its matches; `battle` draws single matches."""
    if resample == "battle":
        return rng.integers(0, len(bt), len(bt))
    order = np.argsort(bt.prompt, kind="stable")
    starts = np.searchsorted(bt.prompt[order], np.arange(int(bt.prompt.max()) + 2))
    drawn = rng.integers(0, len(starts) - 1, len(starts) - 1)
    return np.concatenate([order[starts[p] : starts[p + 1]] for p in drawn])


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


def online_elo(frame: pd.DataFrame, k: float = 32.0, initial: float = 1000.0) -> pd.DataFrame:
    """Elo updated once through the matches in the frame's order (no interval: one pass has none;
    `lower`/`upper` are NaN and ranks follow the rating)."""
    bt = battles(frame)
    require_matches(bt, "online-elo")
    final = elo_python(bt.a, bt.b, bt.score, len(bt.models), k, initial)
    table = pairwise_table(bt, final, np.full_like(final, np.nan), np.full_like(final, np.nan))
    return finish(
        table, bt, "online-elo", {"k": k, "initial": initial}, "none (one pass): ranks follow the rating"
    )


# ---------------------------------------------------------------- Bradley-Terry


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


def bootstrap_interval(bootstrap: int, resample: str) -> str:
    """How a bootstrap percentile interval was made, for a table's header."""
    return f"95% {resample} bootstrap, {bootstrap} replicates" if bootstrap else "none (bootstrap 0)"


def check_bootstrap(bootstrap: int, resample: str) -> None:
    """Reject a negative replicate count or an unknown unit before any work is done."""
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 (no interval) or more, not {bootstrap}")
    if resample not in RESAMPLE_UNITS:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLE_UNITS)}, not {resample!r}")


def percentile_interval(draws: np.ndarray, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5 and 97.5 percentiles of bootstrap draws (rows), or NaN without draws."""
    if not len(draws):
        return point * np.nan, point * np.nan
    lower, upper = np.percentile(draws, [2.5, 97.5], axis=0)
    return lower, upper


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


# ---------------------------------------------------------------- TrueSkill


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


# ---------------------------------------------------------------- win rates and relative scores


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


def relative_scores(
    frame: pd.DataFrame, reference: str = "gpt-3.5-turbo", bootstrap: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """The QLoRA paper's "% of ChatGPT": 100 x (sum of a model's scores) / (sum of the reference's).

    Computed per order (`model_first`: the model in slot 1; `reference_first`) and pooled over both
    orders (`rating`), from judgments that carry a score pair against `reference`. The interval is
    the 2.5-97.5 percentile of the pooled ratio over `bootstrap` redraws of prompts."""
    ok = frame["status"].eq("ok")
    scored = frame[ok & frame["score_1"].notna() & frame["score_2"].notna()]
    vs_ref = scored[(scored["model_1"] == reference) ^ (scored["model_2"] == reference)]
    if vs_ref.empty:
        raise ValueError(
            f"no scored judgments against reference {reference!r}: import the relative scores "
            "(guanaco import qlora-release) or judge with a relative template first"
        )
    model_first = vs_ref["model_2"] == reference
    rows = pd.DataFrame({
        "model": np.where(model_first, vs_ref["model_1"], vs_ref["model_2"]),
        "own": np.where(model_first, vs_ref["score_1"], vs_ref["score_2"]).astype(float),
        "ref": np.where(model_first, vs_ref["score_2"], vs_ref["score_1"]).astype(float),
        "model_first": model_first.to_numpy(),
        "prompt": vs_ref["benchmark"].astype(str) + "\x00" + vs_ref["prompt_key"].astype(str),
    })  # fmt: skip
    rng = np.random.default_rng(seed)
    records = [_relative_row(name, group, rng, bootstrap) for name, group in rows.groupby("model", sort=True)]
    table = pd.DataFrame.from_records(records)
    against = frame["template_id"].isin(set(vs_ref["template_id"])) & (
        (frame["model_1"] == reference) ^ (frame["model_2"] == reference)
    )
    params = {"reference": reference, "bootstrap": bootstrap, "seed": seed}
    header = _header(frame[against], "relative", params, used=len(rows), excluded=int((against & ~ok).sum()),
                     models=len(table))  # fmt: skip
    header["interval"] = bootstrap_interval(bootstrap, "prompt")
    return _ranked(table, header)


def _relative_row(model: str, rows: pd.DataFrame, rng: np.random.Generator, bootstrap: int) -> dict[str, Any]:
    first, second = rows[rows["model_first"]], rows[~rows["model_first"]]
    pooled = 100 * rows["own"].sum() / rows["ref"].sum()
    per_prompt = rows.groupby("prompt")[["own", "ref"]].sum().to_numpy()
    lower = upper = np.nan
    if bootstrap:
        counts = rng.multinomial(
            len(per_prompt), np.full(len(per_prompt), 1 / len(per_prompt)), size=bootstrap
        )
        sums = counts @ per_prompt
        ratios = 100 * sums[:, 0] / sums[:, 1]
        lower, upper = np.percentile(ratios, [2.5, 97.5])
    return {
        "model": model,
        "rating": pooled,
        "lower": lower,
        "upper": upper,
        "model_first": _ratio(first),
        "reference_first": _ratio(second),
        "matches": len(rows),
        "prompts": len(per_prompt),
    }


def _ratio(rows: pd.DataFrame) -> float:
    return 100 * rows["own"].sum() / rows["ref"].sum() if len(rows) and rows["ref"].sum() else np.nan


# ---------------------------------------------------------------- ranks, tables, headers


def interval_ranks(table: pd.DataFrame, lower: str = "lower", upper: str = "upper") -> pd.Series:
    """Chatbot Arena ranks: 1 + the number of models whose lower bound is above this one's upper.

    A model ranks below another only when their intervals separate, so overlapping models share a
    rank. A missing interval (online Elo) falls back to the rating itself."""
    lo = table[lower].fillna(table["rating"]).to_numpy()
    hi = table[upper].fillna(table["rating"]).to_numpy()
    return pd.Series(1 + (lo[None, :] > hi[:, None]).sum(axis=1), index=table.index, name="rank")


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


def require_matches(bt: Battles, method: str) -> None:
    if not len(bt):
        raise ValueError(
            f"no rated pairwise judgments for {method} ({bt.excluded} unparsed or errored): "
            "import judgments (guanaco import ...) or run a tournament first"
        )


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
    header = _header(bt.considered, method, params, used=len(bt), excluded=bt.excluded, models=len(bt.models))
    header["interval"] = interval
    return _ranked(table, header)


def _ranked(table: pd.DataFrame, header: dict[str, Any]) -> pd.DataFrame:
    """Best first, with Chatbot Arena's ranks on `lower`/`upper` (see :func:`interval_ranks`)."""
    table = table.sort_values(["rating", "model"], ascending=[False, True], ignore_index=True)
    table.insert(4, "rank", interval_ranks(table))
    header["ranks"] = RANK_RULE
    table.attrs["header"] = header
    return table


def _header(frame: pd.DataFrame, method: str, params: dict[str, Any], *, used: int, excluded: int,
            models: int) -> dict[str, Any]:  # fmt: skip
    """How a table was made; benchmark, judge and template appear when constant in the frame."""
    header: dict[str, Any] = {"method": method, "params": dict(params)}
    for column in ("benchmark", "judge", "template_id"):
        values = sorted(frame[column].dropna().astype(str).unique()) if column in frame else []
        header[column] = values[0] if len(values) == 1 else (", ".join(values) if values else None)
    header.update({"judgments": len(frame), "used": used, "unparsed_excluded": excluded, "models": models})
    return header
