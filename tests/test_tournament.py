"""Pair selection, match planning and active scheduling."""

from __future__ import annotations

import numpy as np
import pytest

from arena.cli import main
from arena.store import Store
from arena.tournament import ActiveScheduler, Match, load_entries, plan_matches, ranking, select_pairs
from judges.judge import Case
from tests.judge_helpers import MODELS, fill_store, threeclass_judge
from tests.scripted_server import scripted_server_fixture  # noqa: F401


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


def synthetic(strengths: dict[str, float], per_pair: int, seed: int = 0):
    """Matches between models of known strengths, with oracle slot-1 scores drawn from BT."""
    rng = np.random.default_rng(seed)
    models = list(strengths)
    matches, scores = [], {}
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            for k in range(per_pair):
                first, second = (a, b) if k % 2 else (b, a)
                match = Match(k, len(matches), -len(matches) - 1, first, second, Case("", "", ""))
                p = 1 / (1 + np.exp(strengths[second] - strengths[first]))
                matches.append(match)
                scores[match] = float(rng.random() < p)
    return models, matches, scores


def test_active_scheduler_focuses_on_close_pairs_and_stops_when_separated() -> None:
    strengths = {"top": 3.0, "close1": 1.0, "close2": 0.8, "bottom": -3.0}
    models, matches, scores = synthetic(strengths, per_pair=200)
    scheduler = ActiveScheduler(models, matches, batch=16, seed=0)
    played = []
    while batch := scheduler.next_batch():
        for match in batch:
            played.append(match)
            scheduler.record(match.model_1, match.model_2, scores[match])
    by_pair = {}
    for match in played:
        by_pair[match.pair] = by_pair.get(match.pair, 0) + 1
    assert by_pair[("close1", "close2")] == max(by_pair.values())  # the uncertain pair gets the most
    assert by_pair[("bottom", "top")] == scheduler.warmup  # a settled pair only its warm-up
    assert scheduler.separated and len(played) < len(matches) / 4
    final = ranking(models, *(np.array(x) for x in (scheduler.a, scheduler.b, scheduler.score)))
    assert final[0] == "top" and final[-1] == "bottom"


def test_active_run_through_the_command(store: Store, db_url: str, scripted_server) -> None:
    fill_store(store, prompts=6)
    scripted_server.reply = threeclass_judge
    args = ["judge", "--db", db_url, "--benchmark", "vicuna", "--models", ",".join(MODELS),
            "--base-url", scripted_server.url, "--pairs", "active", "--concurrency", "4"]  # fmt: skip
    assert main(args) == 0
    frame = store.judgments()
    # qualities are strictly ordered and the judge never errs: separated before all 36 are judged
    judged = len(frame)
    assert 6 < judged < 36 and frame.status.eq("ok").all()
    assert main(args) == 0 and len(store.judgments()) == judged  # resumed: already separated
    assert len(scripted_server.requests) == judged
