"""Style control: Bradley-Terry ratings with the answers' style held fixed, as Chatbot Arena does.

A judge that prefers longer or more formatted answers rewards a model for its style as much as for
what it says. Chatbot Arena's contextual Bradley-Terry (FastChat ``serve/monitor/rating_systems.py``,
``fit_contextual_bt``) adds style terms to the model strengths:

    logit P(slot 1 wins) = theta_1 - theta_2 + sum_f beta_f * x_f

where each style feature of a match is the normalised difference of the two answers,
``(s_1 - s_2) / (s_1 + s_2 + 1)``, z-scored over the matches. `theta` is then the model's strength at
equal style, and `beta_f` what one standard deviation of the feature's difference is worth.

Features (counted as FastChat's ``add_markdown_info.py`` counts them, code blocks removed first, except
length): ``length`` (characters of the whole answer; FastChat counts tokens), ``headers`` (markdown
``#`` headings), ``lists`` (ordered and unordered list items), ``bold`` (``**x**`` and ``__x__``).
``markdown`` stands for the last three. A feature no answer has (every difference zero) cannot be
estimated and is dropped, and the header says so.

Differences from FastChat, each for a reason: the fit is exact Newton on the penalised likelihood
(few parameters) with this project's weak prior (``arena.bt_fit.BT_L2``) so controlled and
uncontrolled ratings differ only in the style terms; ties count half a win as in ``arena.battles``;
the bootstrap redraws prompts (``arena.battles.replicate_matches``) unless asked for battles.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from arena.battles import (
    Battles,
    battles,
    bootstrap_interval,
    check_bootstrap,
    percentile_interval,
    replicate_matches,
    require_matches,
)
from arena.bt_fit import BT_L2, ELO_SCALE, fit_bradley_terry
from arena.rating_table import finish, interval_ranks, pairwise_table

FEATURES = ("length", "headers", "lists", "bold")
CONTROLS = {"length": ("length",), "markdown": ("headers", "lists", "bold"), **{f: (f,) for f in FEATURES}}
"""What `--control` accepts: a feature, or `markdown` for the three markdown counts."""
CODE_BLOCK = re.compile(r"```[^`]*```")
PATTERNS = {  # FastChat's, except that list indentation stays on its line ([ \t]*, not \s*): linear time on hostile text
    "headers": (re.compile(r"^#{1,6}\s", re.MULTILINE),),
    "lists": (re.compile(r"^[ \t]*\d+\.\s", re.MULTILINE), re.compile(r"^[ \t]*[-*+]\s", re.MULTILINE)),
    "bold": (re.compile(r"\*\*[^*\n]+\*\*"), re.compile(r"__[^_\n]+__")),
}


def control_features(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The features named by a `--control` value such as ``length,markdown``, in FEATURES order."""
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    unknown = [n for n in names if n and n not in CONTROLS]
    if unknown or not any(names):
        raise ValueError(
            f"unknown style control {', '.join(unknown) or repr(spec)}: choose from {', '.join(CONTROLS)}"
        )
    wanted = {f for n in names if n for f in CONTROLS[n]}
    return tuple(f for f in FEATURES if f in wanted)


def answer_style(texts: pd.Series) -> pd.DataFrame:
    """Style counts of each answer (`texts` indexed by generation id): one column per feature."""
    text = texts.fillna("").astype(str)
    prose = text.map(lambda t: CODE_BLOCK.sub("", t))
    out = pd.DataFrame({"length": text.str.len()}, index=texts.index)
    for name, patterns in PATTERNS.items():
        out[name] = prose.map(lambda t, ps=patterns: sum(len(p.findall(t)) for p in ps))
    return out


def style_differences(
    bt: Battles, style: pd.DataFrame, features: tuple[str, ...]
) -> tuple[np.ndarray, list[str], list[str]]:
    """The (matches x kept features) matrix of z-scored normalised differences, the features kept,
    and those dropped because no match differs in them."""
    missing = sorted((set(bt.generation_1) | set(bt.generation_2)) - set(style.index))
    if missing:
        raise ValueError(
            f"{len(missing)} rated answers have no text to measure style on (generation {missing[0]})"
        )
    one = style.loc[bt.generation_1, list(features)].to_numpy(float)
    two = style.loc[bt.generation_2, list(features)].to_numpy(float)
    diff = (one - two) / (one + two + 1.0)
    spread = diff.std(axis=0)
    kept = spread > 0
    z = (diff[:, kept] - diff[:, kept].mean(axis=0)) / spread[kept]
    names = list(features)
    return (
        z,
        [n for n, k in zip(names, kept, strict=True) if k],
        [n for n, k in zip(names, kept, strict=True) if not k],
    )


def design_matrix(bt: Battles, x: np.ndarray) -> np.ndarray:
    """One row per match: +1 for the slot-1 model, -1 for the slot-2 model, then the style features."""
    m = len(bt.models)
    design = np.zeros((len(bt), m + x.shape[1]))
    rows = np.arange(len(bt))
    design[rows, bt.a] += 1.0
    design[rows, bt.b] -= 1.0
    design[:, m:] = x
    return design


def fit_contextual_bt(
    design: np.ndarray,
    score: np.ndarray,
    weights: np.ndarray | None = None,
    start: np.ndarray | None = None,
    l2: float = BT_L2,
) -> np.ndarray:
    """Parameters (natural-log model strengths, then style coefficients) maximising the weighted
    Bradley-Terry likelihood with style terms (`score`: slot 1's, ties half) minus ``l2 * |params|^2``.

    Newton's method: the penalised likelihood is strictly concave and the Hessian is as small as the
    number of models and features, so a few exact steps converge (fewer from a `start` near the
    answer, as a bootstrap replicate's is). `weights` counts how often each match is drawn."""
    w = np.ones(len(design)) if weights is None else np.asarray(weights, float)
    params = np.zeros(design.shape[1]) if start is None else start.copy()
    penalty = 2 * l2 * np.eye(design.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ params)))
        grad = design.T @ (w * (score - p)) - 2 * l2 * params
        step = np.linalg.solve(design.T @ (design * (w * p * (1 - p))[:, None]) + penalty, grad)
        params += np.clip(step, -4.0, 4.0)
        if np.abs(step).max() < 1e-9:
            break
    return params


def style_controlled_bt(
    frame: pd.DataFrame,
    texts: pd.Series,
    control: str | tuple[str, ...] = "length",
    bootstrap: int = 1000,
    resample: str = "prompt",
    seed: int = 0,
    anchor: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Bradley-Terry with style control, side by side with the same fit without it.

    Columns as :func:`arena.bradley_terry.bradley_terry` (rating, interval and rank with style held
    fixed) plus `rating_uncontrolled`, `lower_uncontrolled`, `upper_uncontrolled` and
    `rank_uncontrolled` from the same bootstrap replicates with no style terms. The style
    coefficients with their intervals are ``table.attrs["coefficients"]``."""
    from tqdm.auto import tqdm

    check_bootstrap(bootstrap, resample)
    features = control_features(control)
    bt = battles(frame)
    require_matches(bt, "bt --control")
    if anchor is not None and anchor not in bt.models:
        raise ValueError(f"anchor model {anchor!r} has no rated match; models: {', '.join(bt.models)}")
    x, kept, dropped = style_differences(bt, answer_style(texts), features)
    anchor_index = None if anchor is None else bt.models.index(anchor)

    m = len(bt.models)
    design = design_matrix(bt, x)
    start = fit_contextual_bt(design, bt.score)

    def both_fits(weights: np.ndarray | None) -> np.ndarray:
        weights = np.ones(len(bt)) if weights is None else weights
        with_style = fit_contextual_bt(design, bt.score, weights, start)
        wins = np.zeros((m, m))
        np.add.at(wins, (bt.a, bt.b), weights * bt.score)
        np.add.at(wins, (bt.b, bt.a), weights * (1.0 - bt.score))
        without = fit_bradley_terry(wins)  # the same model and prior, no style terms
        return np.concatenate(
            [_elo(with_style[:m], anchor_index), _elo(without, anchor_index), with_style[m:]]
        )

    point = both_fits(None)
    rng = np.random.default_rng(seed)
    draws = np.array([
        both_fits(np.bincount(replicate_matches(bt, resample, rng), minlength=len(bt)))
        for _ in tqdm(range(bootstrap), desc="bt style control", disable=not progress)
    ]).reshape(bootstrap, len(point))  # fmt: skip
    lower, upper = percentile_interval(draws, point)
    table = pairwise_table(bt, point[:m], lower[:m], upper[:m])
    uncontrolled = pd.DataFrame(
        {"rating": point[m : 2 * m], "lower": lower[m : 2 * m], "upper": upper[m : 2 * m]}
    )
    table["rating_uncontrolled"] = uncontrolled["rating"]
    table["lower_uncontrolled"], table["upper_uncontrolled"] = uncontrolled["lower"], uncontrolled["upper"]
    table["rank_uncontrolled"] = interval_ranks(uncontrolled).to_numpy()
    params = {"bootstrap": bootstrap, "resample": resample, "seed": seed, "anchor": anchor or "mean 1000",
              "ties": "half win each", "l2": BT_L2, "control": ", ".join(features)}  # fmt: skip
    table = finish(table, bt, "bt", params, bootstrap_interval(bootstrap, resample))
    table.attrs["header"]["style_control"] = _describe(kept, dropped)
    table.attrs["coefficients"] = _coefficients(kept, point[2 * m :], lower[2 * m :], upper[2 * m :])
    return table


def _elo(theta: np.ndarray, anchor_index: int | None) -> np.ndarray:
    scaled = theta * ELO_SCALE
    return scaled - (scaled[anchor_index] if anchor_index is not None else scaled.mean()) + 1000.0


def _coefficients(kept: list[str], value: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> pd.DataFrame:
    """Each kept feature's coefficient (log-odds of winning per standard deviation of the normalised
    difference), its interval, and the same in Elo points."""
    return pd.DataFrame({
        "feature": kept, "coefficient": value, "lower": lower, "upper": upper,
        "elo_points_per_sd": value * ELO_SCALE,
    })  # fmt: skip


def _describe(kept: list[str], dropped: list[str]) -> str:
    text = "contextual Bradley-Terry (Chatbot Arena): features (a - b) / (a + b + 1), z-scored over matches: "
    text += ", ".join(kept) if kept else "none"
    return text + (f"; dropped, no match differs in them: {', '.join(dropped)}" if dropped else "")
