"""Battle sampling, issuing and vote storage on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import replace

import pytest
from sqlalchemy import select

from arena.query.judgments import read_judgments
from arena.store import Judgment, Store
from arena.votes import (
    HUMAN_TEMPLATE_HASH,
    HUMAN_TEMPLATE_ID,
    BattleBook,
    NoBattle,
    NotIssued,
    choose,
    next_battle,
    pair_weights,
    record_vote,
)
from tests.arena_seed import seed_arena
from tests.handmade import make_placeholders


def test_choose_is_uniform_without_usable_weights() -> None:
    rng = random.Random(0)
    items = ["a", "b", "c"]
    for weights in ([], [0.0, 0.0, 0.0], [float("nan")] * 3, [1.0]):
        counts = Counter(choose(items, weights, rng) for _ in range(3000))
        assert set(counts) == set(items)
        assert min(counts.values()) > 850, (weights, counts)
    with pytest.raises(NoBattle):
        choose([], [], rng)


def test_pair_weights_uniform_when_nothing_known_and_favour_few_votes_and_close_pairs() -> None:
    pairs = [("a", "b"), ("a", "c"), ("b", "c")]
    assert len(set(pair_weights(pairs, {}))) == 1
    weights = pair_weights(pairs, {("a", "b"): (10.0, 0.0), ("a", "c"): (5.0, 5.0)})
    lopsided, close, unknown = weights
    assert unknown > close > lopsided > 0


def test_no_battle_with_fewer_than_two_contestants(store: Store) -> None:
    with store.session() as s, pytest.raises(NoBattle, match="fewer than two contestants"):
        next_battle(s, "ann")
    seed_arena(store, models=("solo",))
    with store.session() as s, pytest.raises(NoBattle, match=r"\(1 found\)"):
        next_battle(s, "ann")


def test_battle_sides_are_random_and_cover_every_pair(store: Store) -> None:
    seed_arena(store)
    rng = random.Random(1)
    with store.session() as s:
        battles = [next_battle(s, "ann", "vicuna", rng) for _ in range(150)]
    assert Counter(b.model_left for b in battles).keys() == {"alpha", "beta", "gamma"}
    pairs = Counter(frozenset((b.model_left, b.model_right)) for b in battles)
    assert len(pairs) == 3 and min(pairs.values()) > 30  # uniform over 3 pairs when nothing is known
    assert all(b.model_left != b.model_right for b in battles)
    with store.session() as s, pytest.raises(NoBattle, match="fewer than two"):
        next_battle(s, "ann", "mt-bench")


def test_vote_is_a_human_judgment_stored_once(store: Store) -> None:
    seed_arena(store)
    with store.session() as s:
        battle = next_battle(s, "  Ann  Lee ", rng=random.Random(2))
    assert record_vote(store, battle, "Ann Lee", "2") is True
    assert record_vote(store, battle, "Ann Lee", "1") is False  # double click / resubmission
    swapped = replace(
        battle, generation_left=battle.generation_right, generation_right=battle.generation_left
    )
    assert record_vote(store, swapped, "Ann Lee", "1") is False  # the same pair in the other order
    with store.session() as s:
        rows = s.scalars(select(Judgment)).all()
    assert len(rows) == 1
    vote = rows[0]
    assert (vote.judge, vote.template_id, vote.template_hash) == ("human:Ann Lee", HUMAN_TEMPLATE_ID,
                                                                   HUMAN_TEMPLATE_HASH)  # fmt: skip
    assert (vote.generation1_id, vote.generation2_id) == (battle.generation_left, battle.generation_right)
    assert (vote.verdict, vote.status, vote.prompt_id) == ("2", "ok", battle.prompt_id)
    assert vote.meta == {"shown_at": battle.shown_at, "battle_id": battle.battle_id}


def test_sampler_never_repeats_a_judged_pair_and_says_when_done(store: Store) -> None:
    seed_arena(store, prompts=2)  # 2 prompts x 3 model pairs = 6 battles
    rng = random.Random(3)
    seen = set()
    for _ in range(6):
        with store.session() as s:
            battle = next_battle(s, "ann", rng=rng)
        key = frozenset((battle.generation_left, battle.generation_right))
        assert key not in seen
        seen.add(key)
        assert record_vote(store, battle, "ann", "tie")
    with store.session() as s, pytest.raises(NoBattle, match="every pair"):
        next_battle(s, "ann", rng=rng)
    with store.session() as s:
        assert next_battle(s, "bob", rng=rng)  # another annotator still has battles


def test_a_placeholder_answer_is_never_offered_to_a_voter(store: Store) -> None:
    seed_arena(store, prompts=2, payload=False)  # alpha, beta, gamma on prompts 0 and 1
    hidden = set(make_placeholders(store, [("0", "gamma"), ("1", "alpha")]))
    rng = random.Random(4)
    shown = []
    for _ in range(2):  # prompt 0: alpha-beta; prompt 1: beta-gamma; nothing else
        with store.session() as s:
            battle = next_battle(s, "ann", rng=rng)
        shown.append((battle.prompt_id, {battle.model_left, battle.model_right}))
        assert not hidden & {battle.generation_left, battle.generation_right}
        assert record_vote(store, battle, "ann", "tie")
    assert sorted(models for _, models in shown) == [{"alpha", "beta"}, {"beta", "gamma"}]
    with store.session() as s, pytest.raises(NoBattle, match="every pair"):
        next_battle(s, "ann", rng=rng)


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_annotator_name_is_required_and_bounded(store: Store, name: str) -> None:
    seed_arena(store)
    with store.session() as s, pytest.raises(ValueError, match="name"):
        next_battle(s, name)


def test_unknown_verdict_is_refused(store: Store) -> None:
    seed_arena(store)
    with store.session() as s:
        battle = next_battle(s, "ann")
    with pytest.raises(ValueError, match="unknown verdict"):
        record_vote(store, battle, "ann", "left")


def test_one_vote_per_unordered_pair_holds_when_both_orders_race(store: Store) -> None:
    """Two tabs showing (x, y) and (y, x) submit at once, many times over: the store keeps one vote
    per annotator and pair; another annotator still votes on the same pair."""
    seed_arena(store, prompts=1, models=("alpha", "beta"))
    with store.session() as s:
        battle = next_battle(s, "ann", rng=random.Random(4))
    swapped = replace(
        battle, generation_left=battle.generation_right, generation_right=battle.generation_left
    )
    results: list[bool] = []
    start = threading.Barrier(8)

    def submit(shown) -> None:
        start.wait()
        results.append(record_vote(store, shown, "ann", "1"))

    threads = [threading.Thread(target=submit, args=(b,)) for b in [battle, swapped] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert record_vote(store, swapped, "bob", "2") is True
    frame = read_judgments(store, judge="human")
    assert sorted(frame["judge"]) == ["human:ann", "human:bob"]


def test_battle_book_hands_a_battle_back_once_and_only_to_its_annotator(store: Store) -> None:
    seed_arena(store)
    with store.session() as s:
        battle = next_battle(s, "ann")
    book = BattleBook()
    book.issue("ann", battle)
    for who, battle_id in (("bob", battle.battle_id), ("ann", "made-up"), ("ann", None)):
        with pytest.raises(NotIssued):
            book.take(who, battle_id)
    assert book.take(" ann ", battle.battle_id) == battle
    with pytest.raises(NotIssued):
        book.take("ann", battle.battle_id)  # voted on already
    small = BattleBook(capacity=2)
    battles = [replace(battle, battle_id=str(i)) for i in range(3)]
    for b in battles:
        small.issue("ann", b)
    with pytest.raises(NotIssued):
        small.take("ann", "0")  # the oldest open battle made room
    assert small.take("ann", "2") == battles[2]
