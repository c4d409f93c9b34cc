"""Pairwise matches from judgments, and the bootstrap's redraws of them: what every pairwise rating
method (Elo, Bradley-Terry, TrueSkill, style control) starts from.

Verdicts are by slot: ``"1"`` slot 1 won, ``"2"`` slot 2 won, ``"tie"`` and ``"both_bad"`` both
score 0.5. The two orders of a pair are two judgments and so two matches. Judgments whose status is
not ``ok`` are never rated and never silently dropped: they are counted (`Battles.excluded`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from arena.query.vocabulary import SLOT1_SCORE

RESAMPLE_UNITS = ("prompt", "battle")
"""Bootstrap units: a prompt with all its matches (the default), or a single match."""


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


def require_matches(bt: Battles, method: str) -> None:
    if not len(bt):
        raise ValueError(
            f"no rated pairwise judgments for {method} ({bt.excluded} unparsed or errored): "
            "import judgments (guanaco import ...) or run a tournament first"
        )


def replicate_matches(bt: Battles, resample: str, rng: np.random.Generator) -> np.ndarray:
    """Indices of one bootstrap replicate's matches: `prompt` draws as many prompts as there are,
    with replacement, each with all its matches; `battle` draws single matches."""
    if resample == "battle":
        return rng.integers(0, len(bt), len(bt))
    order = np.argsort(bt.prompt, kind="stable")
    starts = np.searchsorted(bt.prompt[order], np.arange(int(bt.prompt.max()) + 2))
    drawn = rng.integers(0, len(starts) - 1, len(starts) - 1)
    return np.concatenate([order[starts[p] : starts[p + 1]] for p in drawn])


def check_bootstrap(bootstrap: int, resample: str) -> None:
    """Reject a negative replicate count or an unknown unit before any work is done."""
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 (no interval) or more, not {bootstrap}")
    if resample not in RESAMPLE_UNITS:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLE_UNITS)}, not {resample!r}")


def bootstrap_interval(bootstrap: int, resample: str) -> str:
    """How a bootstrap percentile interval was made, for a table's header."""
    return f"95% {resample} bootstrap, {bootstrap} replicates" if bootstrap else "none (bootstrap 0)"


def percentile_interval(draws: np.ndarray, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5 and 97.5 percentiles of bootstrap draws (rows), or NaN without draws."""
    if not len(draws):
        return point * np.nan, point * np.nan
    lower, upper = np.percentile(draws, [2.5, 97.5], axis=0)
    return lower, upper
