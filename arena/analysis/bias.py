"""Position and length bias of judges, from the tidy judgments table.

Position: how often the answer shown first wins, the second wins, or neither (tie or both bad);
for pairs judged in both orders, whether the verdict survives the swap:

- ``consistent``: the same outcome for the same answers in both orders (the same answer wins
  twice, or no winner twice);
- ``flip``: each order's winner is a different answer, i.e. the judge followed the position;
- ``tie_involved``: one order has a winner, the other a tie or "both bad".

and how the leaderboard changes when only consistent pairs are counted.

Length: the win rate of an answer against how much longer (in characters) it is than the other,
binned, and a logistic fit of "slot 1 wins" on the length difference, among decisive verdicts. Both
mix length with quality (a better model may also write more), so two views hold the model fixed:
the same fit within each model pair (:func:`length_within_pairs`), and the length coefficient of
Chatbot Arena's style-controlled Bradley-Terry (:func:`length_effect`, see :mod:`arena.style`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from arena.analysis.judgments import pair_name
from arena.query.vocabulary import SLOT1_SCORE

ORDER_CLASSES = ("consistent", "flip", "tie_involved")
LENGTH_BINS = (-np.inf, -1000, -500, -250, -100, -25, 25, 100, 250, 500, 1000, np.inf)
"""Length difference bins in characters (this answer minus the other)."""


def position_bias(frame: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per judge group and template (and `by`: ``pair`` and/or ``category``): first wins, second wins, ties."""
    data = frame.assign(
        pair=pair_name(frame),
        first=frame["verdict"].eq("1"),
        second=frame["verdict"].eq("2"),
        tie=frame["verdict"].isin(["tie", "both_bad"]),
    )
    keys = ["group", "template_id", *by]
    table = data.groupby(keys, sort=True).agg(
        judgments=("verdict", "size"), first_wins=("first", "sum"), second_wins=("second", "sum"),
        ties=("tie", "sum"),
    ).reset_index()  # fmt: skip
    for count, rate in (("first_wins", "first_rate"), ("second_wins", "second_rate"), ("ties", "tie_rate")):
        table[count] = table[count].astype(int)
        table[rate] = table[count] / table["judgments"]
    return table


def order_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per pair of answers judged in both orders by the same judge and template, with
    both verdicts (`verdict_a`, `verdict_b`) and the pair's :data:`ORDER_CLASSES` class;
    `judgment_id_a`/`judgment_id_b` are the two judgments (a = the order whose slot-1 answer has the lower generation id)."""
    keys = ["judge", "template_hash", "generation_1", "generation_2"]
    cols = [
        *keys,
        "group",
        "template_id",
        "benchmark",
        "prompt_key",
        "category",
        "model_1",
        "model_2",
        "verdict",
        "judgment_id",
    ]
    fwd = frame[frame["generation_1"] < frame["generation_2"]][cols]
    rev = frame[frame["generation_1"] > frame["generation_2"]][[*keys, "verdict", "judgment_id"]]
    rev = rev.rename(columns={"generation_1": "generation_2", "generation_2": "generation_1"})
    pairs = fwd.merge(rev, on=keys, suffixes=("_a", "_b"))
    # outcome said of the answers: "1" = the answer in slot 1 of order a; the swap maps "1" <-> "2"
    out_a = pairs["verdict_a"].map({"1": "1", "2": "2"}).fillna("none")
    out_b = pairs["verdict_b"].map({"1": "2", "2": "1"}).fillna("none")
    decisive = out_a.ne("none") & out_b.ne("none")
    pairs["order_class"] = np.where(out_a.eq(out_b), "consistent", np.where(decisive, "flip", "tie_involved"))
    return pairs.sort_values(["group", "benchmark", "prompt_key", "model_1", "model_2"], ignore_index=True)


def order_consistency(pairs: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Counts and shares of consistent, flipped and tie-involved pairs per judge group (and `by`)."""
    data = pairs.assign(pair=pair_name(pairs))
    keys = ["group", "template_id", *by]
    counts = pd.crosstab([data[k] for k in keys], data["order_class"]).reindex(
        columns=list(ORDER_CLASSES), fill_value=0
    )
    counts.columns.name = None
    table = counts.reset_index()
    table.insert(len(keys), "pairs", counts.sum(axis=1).to_numpy())
    for name in ORDER_CLASSES:
        table[f"{name}_rate"] = table[name] / table["pairs"]
    return table


def consistent_only(frame: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """The judgments of consistent pairs only (both orders of each)."""
    kept = pairs[pairs["order_class"].eq("consistent")]
    ids = set(kept["judgment_id_a"]) | set(kept["judgment_id_b"])
    return frame[frame["judgment_id"].isin(ids)].reset_index(drop=True)


def leaderboard_effect(
    frame: pd.DataFrame, pairs: pd.DataFrame, method: str = "bt", **params: object
) -> pd.DataFrame:
    """Ratings from every judgment against ratings from consistent pairs only, with rank change
    (positive = the model moves up when position-driven verdicts are left out)."""
    from arena.ratings import rate

    tables = []
    for (group, template), judged in frame.groupby(["group", "template_id"], sort=True):
        kept = consistent_only(judged, pairs[pairs["group"].eq(group) & pairs["template_id"].eq(template)])
        if kept.empty:
            continue
        every = rate(judged.reset_index(drop=True), method, **params)
        consistent = rate(kept, method, **params)
        both = every[["model", "rating", "rank", "matches"]].merge(
            consistent[["model", "rating", "rank", "matches"]],
            on="model",
            how="outer",
            suffixes=("_all", "_consistent"),
        )
        both.insert(0, "template_id", template)
        both.insert(0, "group", group)
        for column in ("rank_all", "rank_consistent", "matches_all", "matches_consistent"):
            both[column] = both[column].astype("Int64")
        both["rank_change"] = both["rank_all"] - both["rank_consistent"]
        tables.append(both.sort_values(["rating_all", "model"], ascending=[False, True]))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


# ---------------------------------------------------------------- length


def with_lengths(frame: pd.DataFrame, texts: pd.Series) -> pd.DataFrame:
    """`length_1`, `length_2` (characters of each slot's answer; `texts` by generation id) and
    their difference `length_diff` = slot 1 minus slot 2. A judgment with an answer `texts` lacks
    (a placeholder whose text was never published) is left out: its length is unknown, not 0."""
    length = texts.str.len()
    out = frame.assign(length_1=frame["generation_1"].map(length), length_2=frame["generation_2"].map(length))
    out = out.dropna(subset=["length_1", "length_2"])
    out["length_diff"] = out["length_1"] - out["length_2"]
    return out


def length_bias(frame: pd.DataFrame, bins: Sequence[float] = LENGTH_BINS) -> pd.DataFrame:
    """Win rate of an answer by how much longer it is than the other, per judge group and template.

    Each judgment counts once from each side (its slot-1 answer with +diff, its slot-2 answer
    with -diff), so position bias cancels out and the table is symmetric; ties count half."""
    score = frame["verdict"].map(SLOT1_SCORE)
    sides = pd.DataFrame({
        "group": pd.concat([frame["group"], frame["group"]], ignore_index=True),
        "template_id": pd.concat([frame["template_id"], frame["template_id"]], ignore_index=True),
        "length_diff": pd.concat([frame["length_diff"], -frame["length_diff"]], ignore_index=True),
        "score": pd.concat([score, 1.0 - score], ignore_index=True),
    })  # fmt: skip
    sides["bin"] = pd.cut(sides["length_diff"], list(bins), right=False)
    table = sides.groupby(["group", "template_id", "bin"], observed=True, sort=True).agg(
        answers=("score", "size"), win_rate=("score", "mean"), mean_diff=("length_diff", "mean")
    ).reset_index()  # fmt: skip
    table["bin"] = table["bin"].astype(str)
    return table


def length_fit(frame: pd.DataFrame, per_chars: float = 1000.0) -> pd.DataFrame:
    """Per judge group and template, logistic regression of "slot 1 wins" on the length difference (per
    `per_chars` characters) over decisive verdicts: slope, its standard error, the odds ratio per
    `per_chars` more characters, the intercept (position bias at equal length), and how often the
    longer answer won."""
    rows = []
    for (group, template), judged in frame.groupby(["group", "template_id"], sort=True):
        decisive = judged[judged["verdict"].isin(["1", "2"])]
        y = decisive["verdict"].eq("1").to_numpy(float)
        x = decisive["length_diff"].to_numpy(float) / per_chars
        differ = decisive["length_diff"].ne(0)
        longer_won = (decisive["length_diff"].gt(0) == decisive["verdict"].eq("1"))[differ]
        fit = logistic_fit(x, y)
        rows.append({
            "group": group, "template_id": template, "decisive": len(decisive), "slope": fit["slope"], "slope_se": fit["slope_se"],
            "odds_ratio": np.exp(fit["slope"]), "intercept": fit["intercept"],
            "longer_wins_rate": float(longer_won.mean()) if len(longer_won) else np.nan, "per_chars": per_chars,
        })  # fmt: skip
    return pd.DataFrame(rows)


def logistic_fit(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> dict[str, float]:
    """Maximum-likelihood intercept and slope of P(y=1) = sigmoid(a + b x), by Newton's method,
    with the slope's standard error from the inverse Hessian. NaN when the data cannot fit a
    slope (fewer than two distinct x, or one outcome only) or the fit diverges (separation)."""
    nan = {"intercept": np.nan, "slope": np.nan, "slope_se": np.nan}
    if len(x) < 3 or len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return nan
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-design @ beta))
        hessian = design.T @ (design * (p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(hessian, design.T @ (y - p))
        except np.linalg.LinAlgError:
            return nan
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    else:
        return nan
    p = 1.0 / (1.0 + np.exp(-design @ beta))
    covariance = np.linalg.inv(design.T @ (design * (p * (1 - p))[:, None]))
    return {
        "intercept": float(beta[0]),
        "slope": float(beta[1]),
        "slope_se": float(np.sqrt(covariance[1, 1])),
    }


def length_within_pairs(frame: pd.DataFrame, per_chars: float = 1000.0) -> pd.DataFrame:
    """Per judge group, template and model pair (both orders pooled), among decisive verdicts:
    how often the longer answer won, and a logistic fit of "the pair's first-named model wins" on
    its length advantage (per `per_chars` characters). The intercept absorbs the pair's quality
    gap, so the slope is the length effect with the models held fixed."""
    rows = []
    decisive = frame[frame["verdict"].isin(["1", "2"])].assign(pair=pair_name(frame))
    for (group, template, pair), judged in decisive.groupby(["group", "template_id", "pair"], sort=True):
        first = judged["pair"].str.split(" vs ").str[0]
        first_in_slot_1 = judged["model_1"].eq(first)
        first_won = judged["verdict"].eq("1").eq(first_in_slot_1)
        advantage = judged["length_diff"].where(first_in_slot_1, -judged["length_diff"])
        differ = advantage.ne(0)
        longer_won = first_won.eq(advantage.gt(0))[differ]
        fit = logistic_fit(advantage.to_numpy(float) / per_chars, first_won.to_numpy(float))
        rows.append({
            "group": group, "template_id": template, "pair": pair, "decisive": len(judged),
            "longer_wins_rate": float(longer_won.mean()) if len(longer_won) else np.nan,
            "slope": fit["slope"], "slope_se": fit["slope_se"], "odds_ratio": np.exp(fit["slope"]),
            "per_chars": per_chars,
        })  # fmt: skip
    return pd.DataFrame(rows)


def length_effect(
    frame: pd.DataFrame, texts: pd.Series, bootstrap: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per judge group and template: the length coefficient of the style-controlled Bradley-Terry fit
    (log-odds per standard deviation of the normalised length difference, model strengths held
    fixed) with its 95% prompt-bootstrap interval, beside the longer answer's raw win rate."""
    from arena.style import style_controlled_bt

    rows = []
    for (group, template), judged in frame.groupby(["group", "template_id"], sort=True):
        table = style_controlled_bt(
            judged.reset_index(drop=True), texts, "length", bootstrap=bootstrap, seed=seed
        )
        coefficient = table.attrs["coefficients"].set_index("feature").reindex(["length"]).iloc[0]
        decisive = judged[judged["verdict"].isin(["1", "2"]) & judged["length_diff"].ne(0)]
        longer_won = decisive["length_diff"].gt(0).eq(decisive["verdict"].eq("1"))
        rows.append({
            "group": group, "template_id": template, "models": len(table), "matches": table.attrs["header"]["used"],
            "longer_wins_rate": float(longer_won.mean()) if len(longer_won) else np.nan,
            "coefficient": coefficient["coefficient"], "lower": coefficient["lower"], "upper": coefficient["upper"],
            "elo_points_per_sd": coefficient["elo_points_per_sd"],
        })  # fmt: skip
    return pd.DataFrame(rows)
