"""The words the records use, defined once: verdicts, statuses, who is a person, what a verdict
is worth to slot 1."""

from __future__ import annotations

import pandas as pd

VERDICTS = ("1", "2", "tie", "both_bad")
"""Pairwise verdicts, by slot: the answer shown first won, the second won, a tie, both bad."""

STATUSES = ("ok", "unparsed", "error")
"""A judgment is `ok` when its verdict was read; `unparsed` and `error` keep the raw output."""

HUMAN = "human"
"""The judge selector that stands for every human annotator."""

HUMAN_PREFIX = "human:"
"""A person's judge name is this prefix plus their annotator name (``human:alice``)."""

SLOT1_SCORE = {"1": 1.0, "2": 0.0, "tie": 0.5, "both_bad": 0.5}
"""Slot 1's score for each verdict: a tie and "both bad" count half a win to each side."""


def human_judge(annotator: str) -> str:
    """The judge name a person's votes are stored under."""
    return HUMAN_PREFIX + annotator


def is_human_name(judge: str) -> bool:
    """Whether a judge name is a person's (``human:<annotator>``), not a model judge's."""
    return judge.startswith(HUMAN_PREFIX)


def is_human(judges: pd.Series) -> pd.Series:
    """:func:`is_human_name` for a column of judge names."""
    return judges.astype(str).str.startswith(HUMAN_PREFIX)
