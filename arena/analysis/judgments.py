"""Loading the judgments an analysis needs, each group named by the judge selector a person typed.

Judges are selected as everywhere else (:mod:`arena.query.judges`): an exact name, the one
model judge of a family (``gpt-4`` for ``openai:gpt-4-0613``), ``family:NAME``, a prefix ending
in ``:``, or ``human`` for every annotator. An unknown or ambiguous selector is a
:class:`~foundations.errors.UserError` that lists the judges the store has.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from arena.query.judges import resolve_judge
from arena.query.judgments import read_judgments
from arena.query.vocabulary import VERDICTS
from arena.store import Store
from foundations.errors import UserError


def load_judgments(
    store: Store, benchmark: str | None = None, judges: Sequence[str] = (), template: str | None = None
) -> pd.DataFrame:
    """Pairwise judgments with status ok, with a `group` column naming the judge spec each row
    came from (the judge's own name when no judges are asked for). Raises UserError when there is
    nothing to analyse, saying what to do. `template` keeps one judge template id."""
    frame = read_judgments(store, benchmark=benchmark, template_id=template)
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
    pairwise = frame[frame["status"].eq("ok") & frame["verdict"].isin(VERDICTS)].reset_index(drop=True)
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
