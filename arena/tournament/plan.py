"""Planning a tournament: which matches to judge, and which of them are still missing.

A match is two generations of the same prompt in a fixed order (slot 1 shown first). Pair
selection is `all` (every pair of contestants), `baseline:NAME` (everyone against NAME) or
`active` (every pair, scheduled by :mod:`arena.tournament.active`). Matches come in a seeded
random order, so a budget cut samples all pairs evenly.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from arena.query.contestants import contestants_named
from arena.query.generations import judgeable_answers
from arena.query.judgments import judged_keys
from arena.store import Prompt, Store
from judges.judge import Case
from judges.templates import Template, Turn


@dataclass(frozen=True)
class Match:
    prompt_id: int
    generation1_id: int
    generation2_id: int
    model_1: str
    model_2: str
    case: Case = field(compare=False, repr=False)

    @property
    def pair(self) -> tuple[str, str]:
        return tuple(sorted((self.model_1, self.model_2)))


def question_text(prompt: Prompt, turn: int = 1, form: str = "bare") -> str:
    """The user turn `turn` as the judge sees it. Earlier conversation turns (OA's context) always
    come in the QLoRA `### Human:` form; `form="qlora"` (the QLoRA OA release's) uses it even for a
    single-turn prompt. Turn 2 of MT-bench is shown bare: its template lays out the conversation."""
    question = prompt.turns[turn - 1]
    if form not in ("bare", "qlora"):
        raise ValueError(f"unknown question form {form!r}: use bare or qlora")
    context = "".join(
        f"### {'Human' if t.get('role') == 'user' else 'Assistant'}: {t.get('content', '')} "
        for t in prompt.context or []
    )
    if turn == 1 and (context or form == "qlora"):
        return f"{context}### Human: {question} ### Assistant:"
    return question


def load_entries(
    store: Store, benchmark: str, models: Sequence[str], template: Template | None = None
) -> dict[int, dict[str, Any]]:
    """By prompt id: the questions, category, references and each named model's generation with
    its answer to every turn up to the template's (a generation without that turn is left out)."""
    turn = template.turn if template else 1
    form = template.settings.question_form if template else "bare"
    with store.session() as session:
        known = contestants_named(session, models)
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ValueError(f"unknown contestant(s): {', '.join(unknown)}; see `guanaco models list`")
        rows = judgeable_answers(session, benchmark, models)
    entries: dict[int, dict[str, Any]] = {}
    for prompt, gen_id, text, turn_texts, model in rows:
        texts = turn_texts or [text]
        if len(prompt.turns) < turn or len(texts) < turn:
            continue
        references = list(prompt.reference or [])
        entry = entries.setdefault(
            prompt.id,
            {
                "questions": [question_text(prompt, t, form) for t in range(1, turn + 1)],
                "category": prompt.category,
                "references": [references[t] if t < len(references) else None for t in range(turn)],
                "generations": {},
            },
        )
        entry["generations"][model] = (gen_id, [text, *texts[1:turn]])
    return entries


def select_pairs(models: Sequence[str], pairs: str) -> list[tuple[str, str]]:
    """`all` or `active`: every pair; `baseline:NAME`: NAME against each other model."""
    if pairs in ("all", "active"):
        return list(itertools.combinations(models, 2))
    if pairs.startswith("baseline:"):
        base = pairs.split(":", 1)[1]
        if base not in models:
            raise ValueError(f"--pairs {pairs}: {base!r} is not among --models ({', '.join(models)})")
        return [(base, m) for m in models if m != base]
    raise ValueError(f"--pairs {pairs!r}: use all, baseline:NAME or active")


def _rng(seed: int, *parts: object) -> random.Random:
    """A generator seeded by `seed` and names, stable across runs and Python versions."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def plan_matches(
    entries: dict[int, dict[str, Any]],
    pairs: Sequence[tuple[str, str]],
    *,
    prompts_per_pair: int | None = None,
    orders: str = "both",
    seed: int = 0,
) -> list[Match]:
    """Every match to judge, in a seeded random order (so a budget cut samples all pairs evenly).

    `orders="both"` judges each pair of answers twice, once in each slot order; `"one"` once, in
    a seeded random order."""
    if orders not in ("both", "one"):
        raise ValueError(f"--orders {orders!r}: use both or one")
    matches = []
    for a, b in pairs:
        shared = [pid for pid, e in entries.items() if a in e["generations"] and b in e["generations"]]
        rng = _rng(seed, a, b)
        if prompts_per_pair is not None and prompts_per_pair < len(shared):
            shared = sorted(rng.sample(shared, prompts_per_pair))
        for pid in shared:
            both = [(a, b), (b, a)]
            for first, second in both if orders == "both" else [rng.choice(both)]:
                matches.append(_match(entries[pid], pid, first, second))
    _rng(seed, "order").shuffle(matches)
    return matches


def _match(entry: dict[str, Any], prompt_id: int, first: str, second: str) -> Match:
    """The match of `first` (slot 1) and `second` on the entry's last turn, earlier turns as context."""
    (g1, texts1), (g2, texts2) = entry["generations"][first], entry["generations"][second]
    questions, references = entry["questions"], entry["references"]
    turns = zip(questions, texts1, texts2, references, strict=True)
    earlier = tuple(Turn(q, a1, a2, r) for q, a1, a2, r in turns)[:-1]
    case = Case(questions[-1], texts1[-1], texts2[-1], category=entry["category"], reference=references[-1],
                earlier=earlier)  # fmt: skip
    return Match(prompt_id, g1, g2, first, second, case)


def done_keys(store: Store, judge: str, template_hash: str) -> set[tuple[int, int]]:
    """(generation 1, generation 2) already judged; `error` ones are not done and are asked again."""
    with store.session() as session:
        return judged_keys(session, judge, template_hash)


def missing(matches: Iterable[Match], done: set[tuple[int, int]]) -> list[Match]:
    return [m for m in matches if (m.generation1_id, m.generation2_id) not in done]
