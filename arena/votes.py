"""Human battles: which pair of stored answers to show next, and how a vote becomes a judgment.

A vote is an ordinary :class:`~arena.store.Judgment` with judge ``human:<annotator>``, so every
rating method, export and analysis sees people and GPT-4 alike. Slot 1 is the answer shown on the
left, slot 2 the one on the right, so position bias can be measured for people too.

Exactly-once, and one vote per person per pair: a battle is issued by the server to one annotator
(:class:`BattleBook`) and taken back by that annotator's vote, so it can be voted on once, only by
them, and its model names leave the server only with the vote's answer. The store holds each
annotator to one vote per *unordered* pair of answers (a vote sets ``pair_key``, under a unique
key), so two tabs showing (x, y) and (y, x), a resubmitted request or two app processes all land on
the same key and the database keeps the first. The sampler never offers an annotator a pair they
have already judged, so no honest vote is ever refused.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.orm import Session

from arena.query.generations import generation_record, votable_answers
from arena.query.judgments import human_verdicts, judged_pairs
from arena.query.prompts import prompt_record
from arena.query.vocabulary import SLOT1_SCORE, human_judge
from arena.query.writes import insert_ignore
from arena.store import Generation, Judgment, Store, utcnow

HUMAN_TEMPLATE_ID = "human-vote"
HUMAN_PROTOCOL = (
    "guanaco-arena human vote v1: a person sees one prompt and two anonymous answers side by side, "
    "left and right assigned at random, and chooses 'A is better' (left, slot 1), 'B is better' "
    "(right, slot 2), 'Tie' or 'Both are bad'; model names are revealed only after the vote."
)
HUMAN_TEMPLATE_HASH = hashlib.sha256(HUMAN_PROTOCOL.encode()).hexdigest()
MAX_ANNOTATOR = 100

BUTTON_VERDICTS = {"A is better": "1", "B is better": "2", "Tie": "tie", "Both are bad": "both_bad"}
"""The vote buttons, left to right, and the verdict each stores (A = left = slot 1)."""


class NoBattle(Exception):
    """No battle can be shown: fewer than two contestants have answers, or all are voted on."""


class NotIssued(Exception):
    """The vote names no battle that is open for this annotator (never issued to them, already
    voted on, or expired)."""


@dataclass(frozen=True)
class Battle:
    """One ordered pair of answers to one prompt, as shown to one annotator."""

    battle_id: str
    prompt_id: int
    generation_left: int
    generation_right: int
    model_left: str
    model_right: str
    shown_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Battle:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def judge_name(annotator: str) -> str:
    """The judge column for a person's votes; rejects empty or overlong names with a clear message."""
    name = " ".join(str(annotator or "").split())
    if not name:
        raise ValueError("enter your name (or log in) before voting")
    if len(name) > MAX_ANNOTATOR:
        raise ValueError(f"the annotator name is longer than {MAX_ANNOTATOR} characters")
    return human_judge(name)


def pair_weights(
    pairs: list[tuple[str, str]], outcomes: Mapping[tuple[str, str], tuple[float, float]]
) -> list[float]:
    """A weight per model pair: high when it has few votes or its order is still a coin flip.

    `outcomes[(a, b)]` holds (wins of a, wins of b), ties counting half to each. The weight is
    ``1/(1+n) + (1 - |2p - 1|)`` with ``p = (wins_a + 1) / (n + 2)`` (a uniform prior), so pairs with
    no votes all weigh the same (uniform when nothing is known) and no weight is ever zero."""
    weights = []
    for a, b in pairs:
        wins_a, wins_b = outcomes.get((a, b), (0.0, 0.0))
        n = wins_a + wins_b
        p = (wins_a + 1.0) / (n + 2.0)
        weights.append(1.0 / (1.0 + n) + (1.0 - abs(2.0 * p - 1.0)))
    return weights


def choose(items: list[Any], weights: list[float], rng: random.Random) -> Any:
    """One item drawn by weight; uniform when the weights are missing, all zero or not finite."""
    if not items:
        raise NoBattle("nothing to choose from")
    usable = len(weights) == len(items) and all(w >= 0 and w != float("inf") for w in weights)
    if not usable or sum(weights) <= 0:
        return rng.choice(items)
    return rng.choices(items, weights=weights, k=1)[0]


def next_battle(
    session: Session, annotator: str, benchmark: str | None = None, rng: random.Random | None = None
) -> Battle:
    """The next battle for `annotator`: a model pair drawn by :func:`pair_weights`, then a prompt
    both answered that this annotator has not judged for that pair, then a random left/right."""
    rng = rng or random.Random()
    judge = judge_name(annotator)
    answers = _answers(session, benchmark)  # prompt_id -> {model: generation_id}
    models = sorted({m for by_model in answers.values() for m in by_model})
    if len(models) < 2:
        where = f"benchmark {benchmark!r}" if benchmark else "the store"
        raise NoBattle(
            f"fewer than two contestants have answers in {where} ({len(models)} found): "
            "generate answers first (guanaco generate ...)"
        )
    seen = judged_pairs(session, judge, HUMAN_TEMPLATE_HASH)
    open_prompts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for prompt_id, by_model in sorted(answers.items()):
        names = sorted(by_model)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if frozenset((by_model[a], by_model[b])) not in seen:
                    open_prompts[(a, b)].append(prompt_id)
    if not open_prompts:
        raise NoBattle("you have judged every pair of answers: thank you!")
    pairs = sorted(open_prompts)
    a, b = choose(pairs, pair_weights(pairs, _human_outcomes(session, benchmark)), rng)
    prompt_id = rng.choice(open_prompts[(a, b)])
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    return Battle(
        battle_id=uuid.uuid4().hex,
        prompt_id=prompt_id,
        generation_left=answers[prompt_id][left],
        generation_right=answers[prompt_id][right],
        model_left=left,
        model_right=right,
        shown_at=utcnow().isoformat(timespec="seconds"),
    )


def pair_key(generation_a: int, generation_b: int) -> str:
    """The unordered pair of two answers, low id first: the key of one person's one vote on them."""
    low, high = sorted((int(generation_a), int(generation_b)))
    return f"{low}-{high}"


def record_vote(store: Store, battle: Battle, annotator: str, verdict: str) -> bool:
    """Store one vote in its own short transaction; True if new, False if this annotator already
    holds a vote on this pair of answers (in either order): the database refuses the second."""
    if verdict not in BUTTON_VERDICTS.values():
        raise ValueError(f"unknown verdict {verdict!r}: expected one of {sorted(BUTTON_VERDICTS.values())}")
    row = {
        "judge": judge_name(annotator),
        "template_id": HUMAN_TEMPLATE_ID,
        "template_hash": HUMAN_TEMPLATE_HASH,
        "prompt_id": battle.prompt_id,
        "generation1_id": battle.generation_left,
        "generation2_id": battle.generation_right,
        "pair_key": pair_key(battle.generation_left, battle.generation_right),
        "verdict": verdict,
        "status": "ok",
        "meta": {"shown_at": battle.shown_at, "battle_id": battle.battle_id},
    }
    with store.session() as session:
        return insert_ignore(session, Judgment, [row], any_key=True) == 1


class BattleBook:
    """The battles the server has issued and not yet seen voted on, each bound to one annotator.

    :meth:`take` hands a battle back exactly once and only to the annotator it was issued to, so a
    vote cannot name someone else's battle, a battle it made up, or one already voted on. Kept in
    this process's memory (one app process serves one arena; several need sticky sessions), bounded
    by `capacity` (the oldest open battles are dropped first) and by `ttl` seconds."""

    def __init__(self, capacity: int = 100_000, ttl: float = 6 * 3600) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._open: OrderedDict[str, tuple[str, float, Battle]] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, annotator: str, battle: Battle) -> None:
        now = time.monotonic()
        with self._lock:
            while self._open and (
                len(self._open) >= self.capacity or next(iter(self._open.values()))[1] < now - self.ttl
            ):
                self._open.popitem(last=False)
            self._open[battle.battle_id] = (judge_name(annotator), now, battle)

    def take(self, annotator: str, battle_id: str | None) -> Battle:
        """The open battle `battle_id` of `annotator`, closed as it is handed back."""
        judge = judge_name(annotator)
        with self._lock:
            found = self._open.get(str(battle_id or ""))
            if found is None or found[0] != judge or found[1] < time.monotonic() - self.ttl:
                raise NotIssued("no open battle of yours is on screen: press Next")
            del self._open[str(battle_id)]
        return found[2]


def battle_texts(session: Session, battle: Battle) -> dict[str, Any]:
    """What the page shows for a battle: the prompt (context and turns) and both answers."""
    shown = prompt_record(session, battle.prompt_id)
    left = generation_record(session, battle.generation_left)
    right = generation_record(session, battle.generation_right)
    return {
        "benchmark": shown.benchmark,
        "category": shown.category,
        "context": list(shown.context or []),
        "turns": [str(t) for t in shown.turns or []],
        "left": answer_text(left),
        "right": answer_text(right),
    }


def answer_text(generation: Generation) -> str:
    """The answer as one text: for several turns, each turn's answer under its own heading."""
    turns = [str(t) for t in generation.turn_texts or []]
    if len(turns) <= 1:
        return generation.text
    return "\n\n".join(f"**Turn {i}:**\n\n{text}" for i, text in enumerate(turns, 1))


def _answers(session: Session, benchmark: str | None) -> dict[int, dict[str, int]]:
    """By prompt id, each model's generation id: answerable ones only (a placeholder is never shown
    to a voter)."""
    answers: dict[int, dict[str, int]] = defaultdict(dict)
    for prompt_id, model, generation_id in votable_answers(session, benchmark):
        answers[prompt_id][model] = generation_id
    return answers


def _human_outcomes(session: Session, benchmark: str | None) -> dict[tuple[str, str], tuple[float, float]]:
    """Wins per alphabetically ordered model pair over every person's votes (ties count half)."""
    wins: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for m1, m2, verdict in human_verdicts(session, benchmark):
        first = SLOT1_SCORE.get(verdict, 0.5)
        share = (first, 1.0 - first)
        if m1 > m2:
            m1, m2, share = m2, m1, share[::-1]
        wins[(m1, m2)][0] += share[0]
        wins[(m1, m2)][1] += share[1]
    return {pair: (w[0], w[1]) for pair, w in wins.items()}
