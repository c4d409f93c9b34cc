"""Pair selection and match planning (active scheduling: tests/test_active.py)."""

from __future__ import annotations

import pytest

from arena.store import Store
from arena.tournament.plan import load_entries, plan_matches, select_pairs
from tests.handmade import make_placeholders
from tests.judge_helpers import MODELS, fill_store


def test_pair_selection() -> None:
    assert select_pairs(["a", "b", "c"], "all") == [("a", "b"), ("a", "c"), ("b", "c")]
    assert select_pairs(["a", "b", "c"], "baseline:b") == [("b", "a"), ("b", "c")]
    with pytest.raises(ValueError, match="'z' is not among --models"):
        select_pairs(["a", "b"], "baseline:z")
    with pytest.raises(ValueError, match="use all, baseline:NAME or active"):
        select_pairs(["a", "b"], "some")


def test_plan_orders_prompts_per_pair_and_seed(store: Store) -> None:
    fill_store(store, prompts=5)
    entries = load_entries(store, "vicuna", MODELS)
    pairs = select_pairs(MODELS, "all")
    both = plan_matches(entries, pairs, seed=1)
    assert len(both) == 5 * 3 * 2 and len({(m.generation1_id, m.generation2_id) for m in both}) == 30
    assert {(m.model_1, m.model_2) for m in both} == {(a, b) for a in MODELS for b in MODELS if a != b}
    one = plan_matches(entries, pairs, orders="one", prompts_per_pair=2, seed=1)
    assert len(one) == 3 * 2 and len({(m.pair, m.prompt_id) for m in one}) == 6
    assert one == plan_matches(entries, pairs, orders="one", prompts_per_pair=2, seed=1)
    assert plan_matches(entries, pairs, seed=2) != both  # another seed, another order
    with pytest.raises(ValueError, match="unknown contestant"):
        load_entries(store, "vicuna", ["alpha", "nobody"])


def test_a_placeholder_answer_is_never_sent_to_a_judge(store: Store) -> None:
    fill_store(store, prompts=2)
    hidden = set(make_placeholders(store, [("0", "gamma"), ("1", "alpha")]))
    entries = load_entries(store, "vicuna", MODELS)
    assert {model for entry in entries.values() for model in entry["generations"]} == set(MODELS)
    matches = plan_matches(entries, select_pairs(MODELS, "all"))
    assert len(matches) == 2 * 2  # one pair left on each prompt, both orders
    assert not hidden & {g for m in matches for g in (m.generation1_id, m.generation2_id)}
