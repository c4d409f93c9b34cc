"""Loading the judgments an analysis needs, and naming judges the way a person types them.

A judge is named exactly (``openai:gpt-4-0613``, ``human:alice``), by its model name without the
provider (``gpt-4-0613``), by that name's family (``gpt-4`` for ``gpt-4-0613``, but not
``gpt-4o``), or as ``human`` for every annotator at once. An unknown or ambiguous name is a
:class:`~arena.cli.UserError` that lists the judges the store has.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from arena.store import Store
from foundations.errors import UserError

PAIRWISE = ("1", "2", "tie", "both_bad")
HUMAN = "human"
HUMAN_PREFIX = "human:"
SLOT1_SCORE = {"1": 1.0, "2": 0.0, "tie": 0.5, "both_bad": 0.5}
"""Slot 1's score for each verdict, as arena.ratings counts it."""


def is_human(judges: pd.Series) -> pd.Series:
    return judges.astype(str).str.startswith(HUMAN_PREFIX)


def resolve_judge(available: Sequence[str], spec: str) -> list[str]:
    """The store's judge names that `spec` stands for (several only for ``human``)."""
    names = sorted(set(available))
    if spec in (HUMAN, HUMAN_PREFIX):
        found = [n for n in names if n.startswith(HUMAN_PREFIX)]
    elif spec in names:
        found = [spec]
    else:
        bare = {n: n.split(":", 1)[-1] for n in names if not n.startswith(HUMAN_PREFIX)}
        found = [n for n, b in bare.items() if b == spec] or [
            n for n, b in bare.items() if b.startswith(spec + "-")
        ]
    if not found:
        raise UserError(f"unknown judge {spec!r}: the judgments here are by {_listing(names)}")
    if len({n for n in found if not n.startswith(HUMAN_PREFIX)}) > 1:
        raise UserError(f"judge {spec!r} is ambiguous: it matches {', '.join(found)}; give the full name")
    return found


def _listing(names: Sequence[str]) -> str:
    humans = [n for n in names if n.startswith(HUMAN_PREFIX)]
    shown = [n for n in names if not n.startswith(HUMAN_PREFIX)]
    if humans:
        shown.append(f"human ({len(humans)} annotators)")
    return ", ".join(shown) if shown else "nobody"


def load_judgments(
    store: Store, benchmark: str | None = None, judges: Sequence[str] = (), template: str | None = None
) -> pd.DataFrame:
    """Pairwise judgments with status ok, with a `group` column naming the judge spec each row
    came from (the judge's own name when no judges are asked for). Raises UserError when there is
    nothing to analyse, saying what to do. `template` keeps one judge template id."""
    frame = store.judgments(benchmark=benchmark, template_id=template)
    where = (f" for benchmark {benchmark!r}" if benchmark else "") + (
        f" with template {template!r}" if template else ""
    )
    if frame.empty:
        raise UserError(
            f"no judgments in {store.url}{where}: import a release (guanaco import qlora-release DIR) "
            "or run a tournament first"
        )
    if judges:
        parts = []
        for spec in judges:
            names = resolve_judge(frame["judge"].unique(), spec)
            parts.append(frame[frame["judge"].isin(names)].assign(group=spec))
        frame = pd.concat(parts, ignore_index=True)
    else:
        frame = frame.assign(group=frame["judge"])
    pairwise = frame[frame["status"].eq("ok") & frame["verdict"].isin(PAIRWISE)].reset_index(drop=True)
    if pairwise.empty:
        raise UserError(
            f"no pairwise verdicts{where} by {', '.join(judges) or 'any judge'}: only scores or unparsed"
        )
    return pairwise


def pair_name(frame: pd.DataFrame) -> pd.Series:
    """`a vs b` with the two models in name order: the same for both orders of a pair."""
    low = frame[["model_1", "model_2"]].min(axis=1)
    high = frame[["model_1", "model_2"]].max(axis=1)
    return low + " vs " + high
