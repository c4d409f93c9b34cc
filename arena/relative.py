"""The QLoRA paper's relative scores: a model's total score as a percentage of a reference's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from arena.battles import bootstrap_interval
from arena.rating_table import header_of, ranked


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
    header = header_of(frame[against], "relative", params, used=len(rows), excluded=int((against & ~ok).sum()),
                     models=len(table))  # fmt: skip
    header["interval"] = bootstrap_interval(bootstrap, "prompt")
    return ranked(table, header)


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
