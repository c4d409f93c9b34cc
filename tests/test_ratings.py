"""Ratings on hand-made judgments whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from arena import ratings
from arena.store import Store
from tests.ratings_data import frame, simulated, store_judgments

PAIRWISE = ["elo", "online-elo", "bt", "trueskill"]
FAST = {"elo": {"orderings": 200}, "bt": {"bootstrap": 100}, "online-elo": {}, "trueskill": {}}


def round_robin(verdict_for: dict[tuple[str, str], str], prompts: int = 3) -> pd.DataFrame:
    """Every ordered pair in `verdict_for` judged on `prompts` prompts."""
    return frame([(f"q{p}", a, b, v) for p in range(prompts) for (a, b), v in verdict_for.items()])


@pytest.fixture
def champion() -> pd.DataFrame:
    """`champ` beats everyone in both orders; the others split their games."""
    verdicts = {}
    for other in ("x", "y", "z"):
        verdicts[("champ", other)], verdicts[(other, "champ")] = "1", "2"
    for a, b in (("x", "y"), ("y", "z"), ("x", "z")):
        verdicts[(a, b)], verdicts[(b, a)] = "1", "1"
    return round_robin(verdicts)


@pytest.mark.parametrize("method", PAIRWISE)
def test_a_model_that_always_wins_ranks_first_alone(champion: pd.DataFrame, method: str) -> None:
    table = ratings.rate(champion, method, **FAST[method])
    assert list(table.columns[:6]) == ["model", "rating", "lower", "upper", "rank", "matches"]
    assert table.model.iloc[0] == "champ"
    assert table["rank"].iloc[0] == 1
    assert table.set_index("model").loc["champ", ["wins", "ties", "losses", "matches"]].tolist() == [
        18,
        0,
        0,
        18,
    ]
    assert table.rating.is_monotonic_decreasing
    assert math.isfinite(table.rating.iloc[0])


@pytest.mark.parametrize("method", PAIRWISE)
def test_all_ties_give_equal_ratings(method: str) -> None:
    ties = round_robin(
        {(a, b): v for a in "abc" for b in "abc" if a != b for v in ["tie"]} | {("a", "c"): "both_bad"}
    )
    table = ratings.rate(ties, method, **FAST[method])
    tolerance = 0.5 if method == "trueskill" else 1e-9  # TrueSkill's sigmas shrink unevenly with order
    assert table.rating.max() - table.rating.min() < tolerance
    assert (table.ties == table.matches).all()
    assert set(table["rank"]) == {1}


def test_a_single_match_moves_elo_by_half_k() -> None:
    one = frame([("q1", "a", "b", "1")])
    for table in (ratings.elo_ratings(one, orderings=5), ratings.online_elo(one)):
        assert table.set_index("model").rating.to_dict() == {"a": 1016.0, "b": 984.0}
    bt = ratings.bradley_terry(one, bootstrap=20)
    assert bt.model.tolist() == ["a", "b"] and bt.matches.tolist() == [1, 1]


def test_elo_is_seeded_and_orderings_matter() -> None:
    battles = frame(simulated({"a": 1.0, "b": 0.5, "c": 0.0}, 300))
    first = ratings.elo_ratings(battles, orderings=50, seed=1)
    pd.testing.assert_frame_equal(first, ratings.elo_ratings(battles, orderings=50, seed=1))
    assert not first.rating.equals(ratings.elo_ratings(battles, orderings=50, seed=2).rating)
    assert first.attrs["header"]["params"] == {"k": 32.0, "orderings": 50, "seed": 1, "initial": 1000.0}


def test_elo_spread_across_orderings_is_wider_than_the_mean_interval() -> None:
    table = ratings.elo_ratings(frame(simulated({"a": 1.0, "b": 0.5, "c": 0.0}, 300)), orderings=400)
    assert ((table.lower <= table.rating) & (table.rating <= table.upper)).all()
    assert ((table.spread_upper - table.spread_lower) > 3 * (table.upper - table.lower)).all()
    assert table.attrs["header"]["rank_by"] == "spread_lower..spread_upper"


def test_unparsed_judgments_are_excluded_and_counted() -> None:
    matches = simulated({"a": 1.0, "b": 0.0}, 60)
    broken = [("q1", "a", "b", None), ("q2", "b", "a", None), {"prompt_key": "q3", "model_1": "a",
              "model_2": "b", "verdict": None, "status": "error"}]  # fmt: skip
    clean, dirty = frame(matches), frame(matches + broken)
    for method in PAIRWISE:
        table = ratings.rate(dirty, method, **FAST[method])
        header = table.attrs["header"]
        assert (header["judgments"], header["used"], header["unparsed_excluded"]) == (63, 60, 3)
        pd.testing.assert_frame_equal(table, ratings.rate(clean, method, **FAST[method]), check_like=True,
                                      check_exact=False)  # fmt: skip


def test_unparsed_judgments_in_a_real_store_are_counted(store: Store) -> None:
    store_judgments(store, [
        {"prompt_key": "q1", "model_1": "a", "model_2": "b", "verdict": "1"},
        {"prompt_key": "q1", "model_1": "b", "model_2": "a", "verdict": "2"},
        {"prompt_key": "q2", "model_1": "a", "model_2": "b", "verdict": None},
    ])  # fmt: skip
    table = ratings.bradley_terry(store.judgments(benchmark="vicuna", judge="gpt-4"), bootstrap=10)
    header = table.attrs["header"]
    assert (header["used"], header["unparsed_excluded"], header["benchmark"], header["judge"]) == (
        2,
        1,
        "vicuna",
        "gpt-4",
    )
    assert table.model.tolist() == ["a", "b"]


def test_bradley_terry_recovers_a_known_order() -> None:
    truth = {"best": 1.5, "good": 0.8, "fair": 0.2, "poor": -0.5}
    battles = frame(simulated(truth, 4000, seed=7))
    for resample in ("battle", "prompt"):
        table = ratings.bradley_terry(battles, bootstrap=100, resample=resample, seed=0)
        assert table.model.tolist() == list(truth)
        assert table["rank"].tolist() == [1, 2, 3, 4]
        assert table.rating.mean() == pytest.approx(1000.0)
        gaps = table.set_index("model").rating - table.set_index("model").rating["poor"]
        for model, strength in truth.items():
            assert gaps[model] == pytest.approx((strength - truth["poor"]) * ratings.ELO_SCALE, abs=40)
    anchored = ratings.bradley_terry(battles, bootstrap=20, anchor="fair").set_index("model")
    assert anchored.loc["fair", "rating"] == pytest.approx(1000.0)


def test_bradley_terry_likelihood_is_maximised_exactly() -> None:
    wins = np.array([[0.0, 3.0], [1.0, 0.0]])  # a beat b three times, lost once: odds 3
    theta = ratings.fit_bradley_terry(wins, l2=0.0)
    assert theta[0] - theta[1] == pytest.approx(math.log(3.0), abs=1e-9)


def test_prompt_bootstrap_is_wider_when_prompts_repeat_one_result() -> None:
    """Forty prompts, each judged ten times the same way: redrawing prompts sees 40 results, not 400."""
    rng = np.random.default_rng(0)
    matches = [
        (f"q{p}", "a", "b", v)
        for p, v in enumerate(rng.choice(["1", "2"], 40, p=[0.6, 0.4]))
        for _ in range(10)
    ]
    width = {}
    for resample in ("battle", "prompt"):
        table = ratings.bradley_terry(frame(matches), bootstrap=200, resample=resample).set_index("model")
        width[resample] = table.loc["a", "upper"] - table.loc["a", "lower"]
    assert width["prompt"] > 2 * width["battle"]


def test_trueskill_reports_mu_sigma_and_conservative() -> None:
    table = ratings.trueskill_ratings(frame(simulated({"a": 2.0, "b": 0.0}, 50)))
    row = table.iloc[0]
    assert row.model == "a"
    assert row.conservative == pytest.approx(row.rating - 3 * row.sigma)
    assert row.upper - row.rating == pytest.approx(1.96 * row.sigma)


def test_win_rate_matrix_counts_ties_as_half() -> None:
    matrix = ratings.win_rate_matrix(frame([("q1", "a", "b", "1"), ("q1", "b", "a", "tie"), ("q2", "a", "b", "2"),
                                            ("q1", "a", "c", "1")]))  # fmt: skip
    assert matrix.loc["a", "b"] == pytest.approx(1.5 / 3)
    assert matrix.loc["b", "a"] == pytest.approx(1.5 / 3)
    assert matrix.loc["a", "c"] == 1.0 and matrix.loc["c", "a"] == 0.0
    assert math.isnan(matrix.loc["b", "c"]) and math.isnan(matrix.loc["a", "a"])


def test_relative_score_is_hand_computed_per_order_and_pooled() -> None:
    scored = frame([
        {"prompt_key": "q1", "model_1": "m", "model_2": "ref", "verdict": "2", "score_1": 8, "score_2": 10},
        {"prompt_key": "q2", "model_1": "ref", "model_2": "m", "verdict": "1", "score_1": 10, "score_2": 6},
        {"prompt_key": "q1", "model_1": "n", "model_2": "ref", "verdict": "1", "score_1": 9, "score_2": 6},
        {"prompt_key": "q3", "model_1": "ref", "model_2": "m", "verdict": None, "status": "unparsed"},
        {"prompt_key": "q1", "model_1": "m", "model_2": "n", "verdict": "1", "score_1": 9, "score_2": 2},
    ], template="relative")  # fmt: skip
    table = ratings.relative_scores(scored, reference="ref", bootstrap=200).set_index("model")
    assert table.loc["m", "model_first"] == pytest.approx(80.0)
    assert table.loc["m", "reference_first"] == pytest.approx(60.0)
    assert table.loc["m", "rating"] == pytest.approx(70.0)  # (8 + 6) / (10 + 10)
    assert table.loc["n", "rating"] == pytest.approx(150.0) and math.isnan(table.loc["n", "reference_first"])
    assert table.loc["m", "lower"] <= 70.0 <= table.loc["m", "upper"]
    assert table.loc["m", "matches"] == 2 and "ref" not in table.index
    header = ratings.relative_scores(scored, reference="ref", bootstrap=0).attrs["header"]
    assert (header["used"], header["unparsed_excluded"], header["params"]["reference"]) == (3, 1, "ref")


def test_pairwise_methods_leave_score_pairs_to_the_relative_method() -> None:
    three_class = [
        {"prompt_key": "q1", "model_1": "a", "model_2": "b", "verdict": "1", "template_id": "threeclass"}
    ]
    score_pairs = [{"prompt_key": f"q{i}", "model_1": "b", "model_2": "a", "verdict": "1", "score_1": 9, "score_2": 3,
                    "template_id": "relative"} for i in range(5)]  # fmt: skip
    table = ratings.online_elo(frame(three_class + score_pairs))
    assert table.model.tolist() == ["a", "b"]
    assert table.attrs["header"]["used"] == 1 and table.attrs["header"]["template_id"] == "threeclass"
    assert ratings.online_elo(frame(score_pairs)).model.tolist() == ["b", "a"]


def test_interval_ranks_share_ranks_while_intervals_overlap() -> None:
    table = pd.DataFrame({"rating": [10.0, 9.0, 5.0, 4.0], "lower": [9.0, 6.0, 4.5, np.nan],
                          "upper": [11.0, 9.5, 5.5, np.nan]})  # fmt: skip
    assert ratings.interval_ranks(table).tolist() == [1, 1, 3, 4]


def test_bad_requests_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="unknown rating method 'glicko'"):
        ratings.rate(frame([("q1", "a", "b", "1")]), "glicko")
    with pytest.raises(ValueError, match="1 unparsed.*import judgments"):
        ratings.elo_ratings(frame([("q1", "a", "b", None)]))
    with pytest.raises(ValueError, match="no scored judgments against reference 'gpt-3.5-turbo'"):
        ratings.relative_scores(frame([("q1", "a", "b", "1")]))
    with pytest.raises(ValueError, match="anchor model 'zz'"):
        ratings.bradley_terry(frame([("q1", "a", "b", "1")]), anchor="zz")
