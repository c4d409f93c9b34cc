"""Lemons: where a model (or every model) does badly, with the judge's own reasons.

- a model's worst losses: lost judgments sorted by how much lower-rated the winner is;
- prompts where every model fails: each model lost to the reference answer's contestant (or had
  "both bad" against it), or, without a reference, every verdict on the prompt was "both bad";
- tagged items: judgments people marked `lemon` or `cherry` in the app, with their notes.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from sqlalchemy.orm import Session

from arena.query.judgments import judgments_frame, raw_outputs
from arena.query.tags import tags_frame
from foundations.errors import UserError


def with_reasons(session: Session, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with each judgment's raw judge output as `reason`."""
    return frame.assign(reason=frame["judgment_id"].map(raw_outputs(session, frame["judgment_id"].tolist())))


def ratings_of(frame: pd.DataFrame) -> dict[str, float]:
    """Bradley-Terry ratings (no bootstrap: only the point estimates are needed)."""
    from arena.ratings import rate

    table = rate(frame.reset_index(drop=True), "bt", bootstrap=0)
    return dict(zip(table["model"], table["rating"], strict=True))


def worst_losses(
    frame: pd.DataFrame, ratings: Mapping[str, float], model: str, top: int = 20
) -> pd.DataFrame:
    """`model`'s lost judgments, the most lower-rated winner first (`gap` = model's rating minus
    the winner's: positive when it lost to a weaker model)."""
    known = set(frame["model_1"]) | set(frame["model_2"])
    if model not in known:
        raise UserError(f"model {model!r} has no judgments here; models: {', '.join(sorted(known))}")
    in_slot1 = frame["model_1"].eq(model)
    lost = (in_slot1 & frame["verdict"].eq("2")) | (frame["model_2"].eq(model) & frame["verdict"].eq("1"))
    losses = frame[lost].assign(
        model=model,
        slot=in_slot1[lost].map({True: 1, False: 2}),
        opponent=frame["model_2"].where(in_slot1, frame["model_1"])[lost],
    )
    losses["model_rating"] = ratings[model]
    losses["opponent_rating"] = losses["opponent"].map(ratings)
    losses["gap"] = losses["model_rating"] - losses["opponent_rating"]
    columns = ["benchmark", "prompt_key", "category", "model", "opponent", "model_rating", "opponent_rating",
               "gap", "judge", "slot", "verdict", "judgment_id", "reason"]  # fmt: skip
    losses = losses.sort_values(["gap", "benchmark", "prompt_key", "judge", "judgment_id"],
                                ascending=[False, True, True, True, True])  # fmt: skip
    return losses[[c for c in columns if c in losses]].head(top).reset_index(drop=True)


def failed_prompts(frame: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Prompts where every model fails: against `reference`, no model won or tied on the prompt;
    without one, every verdict on the prompt was "both bad"."""
    keys = ["benchmark", "prompt_key", "category"]
    if reference is None:
        per_prompt = frame.groupby(keys, dropna=False).agg(
            judgments=("verdict", "size"), both_bad=("verdict", lambda v: int(v.eq("both_bad").sum()))
        )  # fmt: skip
        failed = per_prompt[per_prompt["judgments"].eq(per_prompt["both_bad"])].reset_index()
        return _by_prompt(failed.assign(models=[_models_on(frame, row) for _, row in failed.iterrows()]))
    known = set(frame["model_1"]) | set(frame["model_2"])
    if reference not in known:
        raise UserError(f"reference {reference!r} has no judgments here; models: {', '.join(sorted(known))}")
    versus = frame[frame["model_1"].eq(reference) ^ frame["model_2"].eq(reference)]
    ref_slot1 = versus["model_1"].eq(reference)
    other = versus["model_2"].where(ref_slot1, versus["model_1"])
    held = (ref_slot1 & versus["verdict"].isin(["2", "tie"])) | (
        ~ref_slot1 & versus["verdict"].isin(["1", "tie"])
    )
    per_model = versus.assign(model=other, held=held).groupby([*keys, "model"], dropna=False)["held"].any()
    per_prompt = per_model.groupby(level=keys, dropna=False).agg(models="size", held="sum")
    failed = per_prompt[per_prompt["held"].eq(0)].drop(columns="held").reset_index()
    return _by_prompt(failed.assign(reference=reference))


def _by_prompt(table: pd.DataFrame) -> pd.DataFrame:
    """Sorted by benchmark and prompt key, numbers in numeric order (2 before 10)."""
    return table.sort_values(
        ["benchmark", "prompt_key"], key=lambda s: s.astype(str).str.zfill(32), ignore_index=True
    )


def _models_on(frame: pd.DataFrame, row: pd.Series) -> int:
    on = frame[frame["benchmark"].eq(row["benchmark"]) & frame["prompt_key"].eq(row["prompt_key"])]
    return len(set(on["model_1"]) | set(on["model_2"]))


def tagged(session: Session, benchmark: str | None = None, model: str | None = None) -> pd.DataFrame:
    """Judgments people tagged, with the tag, annotator, note and the judge's reason."""
    tags = tags_frame(session)
    frame = judgments_frame(session, benchmark=benchmark)
    if model:
        frame = frame[frame["model_1"].eq(model) | frame["model_2"].eq(model)]
    found = tags.merge(frame, on="judgment_id")
    found = with_reasons(session, found) if len(found) else found.assign(reason=pd.Series(dtype=str))
    columns = ["tag", "annotator", "note", "benchmark", "prompt_key", "category", "model_1", "model_2",
               "judge", "verdict", "judgment_id", "reason"]  # fmt: skip
    return found[columns].sort_values(
        ["tag", "benchmark", "prompt_key", "judgment_id", "annotator"], ignore_index=True
    )
