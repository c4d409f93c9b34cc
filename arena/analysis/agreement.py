"""Agreement between judges on the same items, at the level of verdicts and of rankings.

Two protocols (:data:`PROTOCOLS`). ``mt-bench`` is MT-bench's (Zheng et al. 2023, FastChat's
``llm_judge/compute_agreement.py``), see :func:`mt_bench_agreement`. ``majority``, the rest of this
module: an item is one (prompt, answer in slot 1, answer in slot 2): the same pair in the same order, so
position bias does not count as disagreement. Labels are the slot-1 view: ``1``, ``2`` or ``tie``
("both bad" counts as a tie, since model judge templates have no such verdict). A judge group
with several judgments of an item (``human`` = every annotator) gives the item its majority label;
items without a strict majority are left out and counted.

- accuracy with ties (share of items with the same label) and without ties (only items where
  neither judge said tie), Cohen's kappa, each with a bootstrap interval over items;
- Fleiss' kappa among the annotators of a group (items rated by two or more of them; the
  per-item form that allows a varying number of raters, equal to Fleiss (1971) when it is fixed);
- system level: each model's mean score (win 1, tie 0.5) on the shared items per judge, and
  Kendall's tau-b and Spearman's rho between the two judges' scores, with a bootstrap interval
  over prompts.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from arena.query.vocabulary import is_human

PROTOCOLS = {
    "majority": "each judge group's majority label per item (same prompt, pair and order; items without a "
    "strict majority left out), then accuracy with/without ties, Cohen's and Fleiss' kappa, system level",
    "mt-bench": "MT-bench: a model judge's two orders of a pair combined (the same winner, else a tie), "
    "compared with every single human vote on that pair, per turn, with and without ties",
}
LABELS = ("1", "2", "tie")
LABEL_OF = {"1": "1", "2": "2", "tie": "tie", "both_bad": "tie"}
ITEM = ["benchmark", "prompt_key", "generation_1", "generation_2"]


def pooled_labels(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Each item's majority label per judge group, and how many items had no strict majority."""
    data = frame.assign(label=frame["verdict"].map(LABEL_OF))
    counts = data.groupby(["group", *ITEM], sort=True)["label"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=list(LABELS), fill_value=0)
    clear = counts.eq(counts.max(axis=1), axis=0).sum(axis=1).eq(1)
    labels = counts[clear].idxmax(axis=1).rename("label").reset_index()
    models = data.drop_duplicates(ITEM).set_index(ITEM)[["model_1", "model_2"]]
    labels = labels.join(models, on=ITEM)[["group", *ITEM, "model_1", "model_2", "label"]]
    return labels, int((~clear).sum())


def paired_items(labels: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Items labelled by both groups: columns ITEM, models, `label_a`, `label_b`."""
    left = labels[labels["group"].eq(a)].drop(columns="group")
    right = labels[labels["group"].eq(b)].drop(columns=["group", "model_1", "model_2"])
    return left.merge(right, on=ITEM, suffixes=("_a", "_b")).sort_values(ITEM, ignore_index=True)


def confusion(label_a: pd.Series, label_b: pd.Series) -> pd.DataFrame:
    """Counts of (label by a, label by b), every label present on both axes."""
    table = pd.crosstab(pd.Categorical(label_a, LABELS), pd.Categorical(label_b, LABELS), dropna=False)
    table.index.name, table.columns.name = "a", "b"
    return table


def cohen_kappa(matrix: np.ndarray) -> float:
    """Cohen's kappa of a square confusion matrix: (observed - chance) / (1 - chance)."""
    matrix = np.asarray(matrix, float)
    n = matrix.sum()
    observed = np.trace(matrix) / n
    chance = (matrix.sum(axis=0) * matrix.sum(axis=1)).sum() / n**2
    return float((observed - chance) / (1 - chance)) if chance < 1 else np.nan


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an items x categories matrix of how many raters chose each category.

    Items with fewer than two ratings carry no agreement and are left out."""
    counts = np.asarray(counts, float)
    raters = counts.sum(axis=1)
    counts, raters = counts[raters >= 2], raters[raters >= 2]
    if not len(counts):
        return np.nan
    per_item = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    shares = counts.sum(axis=0) / raters.sum()
    chance = (shares**2).sum()
    return float((per_item.mean() - chance) / (1 - chance)) if chance < 1 else np.nan


def _accuracies(matrix: np.ndarray) -> tuple[float, float, float]:
    """Accuracy with ties, without ties (labels 1 and 2 only), and Cohen's kappa."""
    total = matrix.sum()
    decisive = matrix[:2, :2]
    with_ties = np.trace(matrix) / total if total else np.nan
    without = np.trace(decisive) / decisive.sum() if decisive.sum() else np.nan
    return float(with_ties), float(without), cohen_kappa(matrix) if total else np.nan


def verdict_agreement(items: pd.DataFrame, reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Accuracy with and without ties and Cohen's kappa, each with a 95% bootstrap interval."""
    code_of = {label: i for i, label in enumerate(LABELS)}
    codes = items["label_a"].map(code_of).to_numpy() * 3 + items["label_b"].map(code_of).to_numpy()
    point = _accuracies(np.bincount(codes, minlength=9).reshape(3, 3))
    rng = np.random.default_rng(seed)
    draws = np.array([
        _accuracies(np.bincount(codes[rng.integers(0, len(codes), len(codes))], minlength=9).reshape(3, 3))
        for _ in range(reps)
    ]) if len(codes) else np.empty((0, 3))  # fmt: skip
    names = ("accuracy", "accuracy_without_ties", "cohen_kappa")
    counts = (len(codes), int(((codes // 3 < 2) & (codes % 3 < 2)).sum()), len(codes))
    rows = []
    for i, name in enumerate(names):
        column = draws[:, i][~np.isnan(draws[:, i])] if len(draws) else np.empty(0)
        lower, upper = np.percentile(column, [2.5, 97.5]) if len(column) else (np.nan, np.nan)
        rows.append({"metric": name, "value": point[i], "lower": lower, "upper": upper, "items": counts[i]})
    return pd.DataFrame(rows)


def annotator_agreement(frame: pd.DataFrame, reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Fleiss' kappa among the judges of each group that has several (the human annotators),
    over items two or more of them judged, with a bootstrap interval over those items."""
    rows = []
    for group, judged in frame.groupby("group", sort=True):
        if judged["judge"].nunique() < 2:
            continue
        labels = judged.assign(label=pd.Categorical(judged["verdict"].map(LABEL_OF), LABELS))
        counts = labels.groupby(ITEM, observed=True)["label"].value_counts().unstack(fill_value=0)
        counts = counts.reindex(columns=list(LABELS), fill_value=0).to_numpy()
        counts = counts[counts.sum(axis=1) >= 2]
        rng = np.random.default_rng(seed)
        draws = (
            [fleiss_kappa(counts[rng.integers(0, len(counts), len(counts))]) for _ in range(reps)]
            if len(counts)
            else []
        )
        draws = [d for d in draws if not np.isnan(d)]
        lower, upper = np.percentile(draws, [2.5, 97.5]) if draws else (np.nan, np.nan)
        rows.append({"group": group, "annotators": judged["judge"].nunique(), "items": len(counts),
                     "fleiss_kappa": fleiss_kappa(counts), "lower": lower, "upper": upper})  # fmt: skip
    return pd.DataFrame(rows, columns=["group", "annotators", "items", "fleiss_kappa", "lower", "upper"])


def _model_sums(
    items: pd.DataFrame, label: str, models: list[str], prompts: pd.Index
) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt and model: total score and number of items, from one judge's labels."""
    score = items[label].map({"1": 1.0, "2": 0.0, "tie": 0.5}).to_numpy()
    p = prompts.get_indexer(items["benchmark"] + "/" + items["prompt_key"])
    m1, m2 = (pd.Index(models).get_indexer(items[c]) for c in ("model_1", "model_2"))
    sums, n = np.zeros((len(prompts), len(models))), np.zeros((len(prompts), len(models)))
    np.add.at(sums, (p, m1), score)
    np.add.at(sums, (p, m2), 1.0 - score)
    np.add.at(n, (p, m1), 1.0)
    np.add.at(n, (p, m2), 1.0)
    return sums, n


def system_scores(items: pd.DataFrame) -> pd.DataFrame:
    """Each model's mean score on the shared items according to each judge, and its rank."""
    models = sorted(set(items["model_1"]) | set(items["model_2"]))
    prompts = pd.Index(sorted(set(items["benchmark"] + "/" + items["prompt_key"])))
    out = pd.DataFrame({"model": models})
    for side in ("a", "b"):
        sums, n = _model_sums(items, f"label_{side}", models, prompts)
        out[f"score_{side}"] = sums.sum(axis=0) / n.sum(axis=0)
        out[f"rank_{side}"] = out[f"score_{side}"].rank(ascending=False, method="min").astype(int)
    return out.sort_values(["score_a", "model"], ascending=[False, True], ignore_index=True)


def system_agreement(items: pd.DataFrame, reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Kendall's tau-b and Spearman's rho between the judges' model scores, with 95% bootstrap
    intervals over prompts (a prompt's items are drawn together)."""
    models = sorted(set(items["model_1"]) | set(items["model_2"]))
    prompts = pd.Index(sorted(set(items["benchmark"] + "/" + items["prompt_key"])))
    sums_a, n = _model_sums(items, "label_a", models, prompts)
    sums_b, _ = _model_sums(items, "label_b", models, prompts)

    def correlations(weights: np.ndarray) -> tuple[float, float]:
        count = weights @ n
        seen = count > 0
        a, b = (weights @ sums_a)[seen] / count[seen], (weights @ sums_b)[seen] / count[seen]
        if seen.sum() < 2:
            return np.nan, np.nan
        with warnings.catch_warnings():  # a judge scoring every model alike has no ranking: NaN
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            return stats.kendalltau(a, b).statistic, stats.spearmanr(a, b).statistic

    point = correlations(np.ones(len(prompts)))
    rng = np.random.default_rng(seed)
    draws = np.array([correlations(rng.multinomial(len(prompts), np.full(len(prompts), 1 / len(prompts))).astype(float))
                      for _ in range(reps)])  # fmt: skip
    rows = []
    for i, name in enumerate(("kendall_tau", "spearman")):
        column = draws[:, i][~np.isnan(draws[:, i])]
        lower, upper = np.percentile(column, [2.5, 97.5]) if len(column) else (np.nan, np.nan)
        rows.append({"metric": name, "value": point[i], "lower": lower, "upper": upper, "models": len(models),
                     "prompts": len(prompts)})  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- MT-bench's protocol

PAIR = ["benchmark", "prompt_key", "answer_a", "answer_b"]
"""An unordered pair of answers: `answer_a` is the one with the lower generation id."""
WINNER = {"1": 0, "2": 1, "tie": 2, "both_bad": 2}
"""Slot verdict to (slot-1 answer, slot-2 answer, tie); see :func:`answer_votes`."""


def answer_votes(frame: pd.DataFrame) -> pd.DataFrame:
    """Each judgment as a vote about an unordered pair of answers: `winner` is ``a`` (the answer
    with the lower generation id), ``b`` or ``tie`` ("both bad" is a tie, as FastChat counts every
    vote containing "tie"), and `a_first` says whether answer a was shown in slot 1."""
    a_first = frame["generation_1"] < frame["generation_2"]
    slot = frame["verdict"].map(WINNER)
    winner = np.where(slot.eq(2), "tie", np.where(slot.eq(0) == a_first, "a", "b"))
    out = frame.assign(
        answer_a=np.where(a_first, frame["generation_1"], frame["generation_2"]),
        answer_b=np.where(a_first, frame["generation_2"], frame["generation_1"]),
        winner=winner,
        a_first=a_first,
    )
    if "turn" not in out:
        out["turn"] = 1
    return out


def combined_orders(votes: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """A model judge's verdict on each pair judged in both orders, as FastChat's pairwise judging
    makes it: the winner when both orders agree, else a tie (FastChat's "inconsistent"). Pairs judged
    in one order only are left out and counted (`one_order`), as are `inconsistent` pairs."""
    keys = ["group", "judge", "template_hash", "turn", *PAIR]
    orders = votes.groupby([*keys, "a_first"], sort=True)["winner"].first().unstack("a_first")
    both = orders.reindex(columns=[True, False]).dropna()
    same = both[True].eq(both[False])
    combined = pd.DataFrame({"winner": np.where(same, both[True], "tie")}, index=both.index).reset_index()
    counts = {"one_order": int(len(orders) - len(both)), "inconsistent": int((~same).sum())}
    return combined, counts


def mt_bench_agreement(
    frame: pd.DataFrame, a: str, b: str, reps: int = 1000, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Agreement of judge groups `a` and `b` under MT-bench's protocol, per turn, with and without ties.

    A model judge's group gives one vote per pair (:func:`combined_orders`); a human group gives every
    annotator's vote as it is, never collapsed to a majority. Every (vote by a, vote by b) on the same
    pair and turn is one comparison; `agreement` = agreeing comparisons / comparisons. Without ties,
    comparisons where either vote is a tie are left out. The interval is a 95% bootstrap over pairs.
    Returns the table and the counts of pairs left out of a model judge's votes."""
    votes = answer_votes(frame)
    sides, left_out = [], {"one_order": 0, "inconsistent": 0}
    for group in (a, b):
        mine = votes[votes["group"].eq(group)]
        if is_human(mine["judge"]).all():
            sides.append(mine[["turn", *PAIR, "winner"]])
            continue
        combined, counts = combined_orders(mine)
        left_out = {k: left_out[k] + counts[k] for k in left_out}
        sides.append(combined[["turn", *PAIR, "winner"]])
    pairs = sides[0].merge(sides[1], on=["turn", *PAIR], suffixes=("_a", "_b"))
    rows = []
    for turn, on_turn in pairs.groupby("turn", sort=True):
        for ties in (True, False):
            kept = on_turn if ties else on_turn[on_turn["winner_a"].ne("tie") & on_turn["winner_b"].ne("tie")]
            rows.append({"turn": turn, "ties": "with ties" if ties else "without ties", "judge_a": a, "judge_b": b,
                         **_agreement_with_interval(kept, reps, seed)})  # fmt: skip
    return pd.DataFrame(rows), left_out


def _agreement_with_interval(pairs: pd.DataFrame, reps: int, seed: int) -> dict[str, float]:
    """Comparisons, agreeing ones, their ratio and a 95% bootstrap interval over answer pairs."""
    same = pairs["winner_a"].eq(pairs["winner_b"]).to_numpy(float)
    item = pd.factorize(pairs[PAIR].astype(str).agg("/".join, axis=1))[0] if len(pairs) else np.empty(0, int)
    agree, total = np.bincount(item, same), np.bincount(item).astype(float)
    lower = upper = np.nan
    if reps and len(total):
        weights = np.random.default_rng(seed).multinomial(
            len(total), np.full(len(total), 1 / len(total)), reps
        )
        ratios = (weights @ agree) / (weights @ total)
        lower, upper = np.percentile(ratios, [2.5, 97.5])
    return {"pairs": len(total), "comparisons": int(total.sum()), "agree": int(agree.sum()),
            "agreement": agree.sum() / total.sum() if total.sum() else np.nan, "lower": lower,
            "upper": upper}  # fmt: skip
