"""Active scheduling: where the design spends judgments, and a stopping rule whose error rate
holds under repeated looks, checked by simulation."""

from __future__ import annotations

import math

import numpy as np

from arena.cli import main
from arena.query.judgments import read_judgments
from arena.store import Store
from arena.tournament.active import ActiveScheduler, Design, PairEvidence
from arena.tournament.plan import Match
from judges.judge import Case
from tests.judge_helpers import MODELS, fill_store, threeclass_judge
from tests.scripted_server import scripted_server_fixture  # noqa: F401


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


def test_design_weighs_open_comparisons_not_settled_ones() -> None:
    design = Design(4, explore=0.0)
    wins = np.array([[0, 40, 40, 40], [0, 0, 21, 40], [0, 19, 0, 40], [0, 0, 0, 0]], dtype=float)
    chances = dict(zip(map(tuple, design.pairs.tolist()), design.probabilities(wins), strict=True))
    assert max(chances, key=chances.get) == (1, 2)  # the close pair
    assert chances[(0, 3)] < 0.01  # top against bottom is settled
    only = np.array([pair == (0, 3) for pair in chances])
    assert design.probabilities(wins, available=only)[only].item() == 1.0


def test_active_scheduler_spends_least_on_settled_pairs_and_stops_when_certified() -> None:
    strengths = {"top": 4.0, "close1": 1.0, "close2": 0.0, "bottom": -3.0}
    models, matches, scores = synthetic(strengths, per_pair=200)
    scheduler = ActiveScheduler(models, matches, batch=16, seed=0)
    played = []
    while batch := scheduler.next_batch():
        for match in batch:
            played.append(match)
            scheduler.record(match.model_1, match.model_2, scores[match])
    by_pair: dict[tuple[str, str], int] = {}
    for match in played:
        by_pair[match.pair] = by_pair.get(match.pair, 0) + 1
    assert by_pair[("bottom", "top")] == min(by_pair.values())  # the most settled pair the least
    assert scheduler.separated and len(played) < len(matches) / 4
    assert scheduler.order() == ["top", "close1", "close2", "bottom"]


def _crossed(draws: np.ndarray, level: float) -> bool:
    """Whether the anytime-valid capital for "the first model scores above 1/2" ever reaches 1/level."""
    evidence = PairEvidence()
    for x in draws:
        evidence.add(float(x))
        if evidence.log_capital[0] >= math.log(1 / level):
            return True
    return False


def _naive_crossed(draws: np.ndarray, level: float, every: int = 10) -> bool:
    """A one-sided z-test at `level`, looked at every `every` judgments: valid for one look only."""
    z = {0.1: 1.2815515655446004}[level]
    for n in range(every, len(draws) + 1, every):
        x = draws[:n]
        sd = max(x.std(ddof=1), 1e-9)
        if (x.mean() - 0.5) / (sd / math.sqrt(n)) > z:
            return True
    return False


def test_stopping_evidence_keeps_its_error_rate_under_repeated_looks() -> None:
    """Under the null (the two models exactly even, ties included), the capital reaches 1/level at
    any of 300 looks in at most `level` of the runs; the fixed-level test looked at as often does
    not keep it, so the simulation can tell the difference."""
    rng = np.random.default_rng(0)
    level, runs = 0.1, 400
    draws = rng.choice([0.0, 0.5, 1.0], p=[0.4, 0.2, 0.4], size=(runs, 300))
    anytime = np.mean([_crossed(d, level) for d in draws])
    naive = np.mean([_naive_crossed(d, level) for d in draws])
    assert anytime <= level
    assert naive > level + 0.1
    strong = rng.choice([0.0, 0.5, 1.0], p=[0.2, 0.1, 0.7], size=(50, 300))
    assert np.mean([_crossed(d, level) for d in strong]) > 0.9  # and it still finds real differences


class _Endless:
    """Every pair always has another match (a random slot order); outcomes drawn by the test."""

    def __init__(self, models: list[str], rng: np.random.Generator) -> None:
        self.models, self.rng = models, rng

    def left(self, _pair: tuple[int, int]) -> int:
        return 1

    def take(self, pair: tuple[int, int]) -> tuple[str, str]:
        i, j = pair if self.rng.random() < 0.5 else pair[::-1]
        return self.models[i], self.models[j]


def test_scheduler_certifies_a_ranking_of_even_models_at_most_alpha_of_the_time() -> None:
    """Three exactly even models: every certified ranking is wrong. Over 60 adaptive runs of up to
    400 judgments, looked at after every batch, certification stays within alpha."""
    alpha, runs, wrong = 0.2, 60, 0
    models = ["a", "b", "c"]
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        scheduler = ActiveScheduler(models, [], pool=_Endless(models, rng), batch=25, alpha=alpha, seed=seed)
        judged = 0
        while judged < 400 and (batch := scheduler.next_batch()):
            for m1, m2 in batch:
                scheduler.record(m1, m2, float(rng.choice([0.0, 0.5, 1.0], p=[0.4, 0.2, 0.4])))
            judged += len(batch)
        wrong += scheduler.separated
    assert wrong / runs <= alpha


def test_active_run_through_the_command(store: Store, db_url: str, scripted_server) -> None:
    fill_store(store, prompts=12)
    scripted_server.reply = threeclass_judge
    args = ["judge", "--db", db_url, "--benchmark", "vicuna", "--models", ",".join(MODELS),
            "--base-url", scripted_server.url, "--pairs", "active", "--concurrency", "4"]  # fmt: skip
    assert main(args) == 0
    frame = read_judgments(store)
    # qualities are strictly ordered and the judge never errs: certified before all 72 are judged
    judged = len(frame)
    assert 6 < judged < 72 and frame.status.eq("ok").all()
    assert main(args) == 0 and len(read_judgments(store)) == judged  # resumed: already certified
    assert len(scripted_server.requests) == judged
