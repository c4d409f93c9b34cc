"""Position and length bias, judge agreement and lemons on hand-made judgments with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from arena.analysis import agreement, bias, lemons
from arena.analysis.judgments import load_judgments
from arena.cli import UserError, main
from arena.query.generations import answer_texts
from arena.query.judges import resolve_judge
from tests.handmade import add_judgments, both_orders, make_placeholders, tag

GPT4 = "openai:gpt-4-0613"


def test_position_bias_counts_first_second_and_ties(store):
    verdicts = ["1", "1", "1", "2", "tie", "both_bad"]
    add_judgments(store, [(str(i), "a", "b", GPT4, v) for i, v in enumerate(verdicts)])
    table = bias.position_bias(load_judgments(store))
    row = table.iloc[0]
    assert (row.judgments, row.first_wins, row.second_wins, row.ties) == (6, 3, 1, 2)
    assert row.first_rate == pytest.approx(0.5) and row.tie_rate == pytest.approx(1 / 3)


def test_order_swaps_are_classed_consistent_flip_or_tie_involved(store):
    rows = (
        both_orders("1", "a", "b", GPT4, "1", "2")  # a wins twice: consistent
        + both_orders("2", "a", "b", GPT4, "1", "1")  # the first shown wins twice: flip
        + both_orders("3", "a", "b", GPT4, "tie", "2")  # tie, then a wins: tie involved
        + both_orders("4", "a", "b", GPT4, "tie", "both_bad")  # no winner twice: consistent
        + [("5", "a", "b", GPT4, "1")]  # one order only: not a pair
    )
    add_judgments(store, rows, categories={"1": "math", "2": "math"})
    frame = load_judgments(store)
    pairs = bias.order_pairs(frame)
    classes = dict(zip(pairs.prompt_key, pairs.order_class, strict=True))
    assert classes == {"1": "consistent", "2": "flip", "3": "tie_involved", "4": "consistent"}
    table = bias.order_consistency(pairs).iloc[0]
    assert (table.pairs, table.consistent, table.flip, table.tie_involved) == (4, 2, 1, 1)
    by_category = bias.order_consistency(pairs, ["category"]).set_index("category")
    assert by_category.loc["math", "flip"] == 1 and by_category.loc["generic", "flip"] == 0


def test_leaderboard_from_consistent_pairs_only(store):
    # a beats b consistently on two prompts; on four more the judge always picks slot 1 (flips),
    # which alone would make a and b equal; c loses consistently to both
    rows = both_orders("1", "a", "b", GPT4, "1", "2") + both_orders("2", "a", "b", GPT4, "1", "2")
    for key in "3456":
        rows += both_orders(key, "a", "b", GPT4, "1", "1")
    for key in "78":
        rows += both_orders(key, "a", "c", GPT4, "1", "2") + both_orders(key, "b", "c", GPT4, "1", "2")
    add_judgments(store, rows)
    frame = load_judgments(store)
    effect = bias.leaderboard_effect(frame, bias.order_pairs(frame), "bt", bootstrap=0).set_index("model")
    assert effect.loc["a", "matches_all"] == 16 and effect.loc["a", "matches_consistent"] == 8
    assert effect.loc["c", "matches_consistent"] == 8
    gap_all = effect.loc["a", "rating_all"] - effect.loc["b", "rating_all"]
    gap_consistent = effect.loc["a", "rating_consistent"] - effect.loc["b", "rating_consistent"]
    assert gap_consistent > gap_all > 0


def test_logistic_slope_is_the_log_odds_ratio_for_a_binary_predictor():
    # x = 0: 3 wins, 1 loss; x = 1: 1 win, 3 losses -> slope = log((1/3) / 3) = -log 9
    x = np.array([0, 0, 0, 0, 1, 1, 1, 1], float)
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0], float)
    fit = bias.logistic_fit(x, y)
    assert fit["slope"] == pytest.approx(-math.log(9), abs=1e-8)
    assert fit["intercept"] == pytest.approx(math.log(3), abs=1e-8)
    # Wald SE of a log odds ratio: sqrt(1/3 + 1 + 1 + 1/3)
    assert fit["slope_se"] == pytest.approx(math.sqrt(8 / 3), abs=1e-6)
    assert math.isnan(bias.logistic_fit(x, np.ones_like(x))["slope"])


def test_length_bias_table_and_fit(store):
    # the longer answer wins 3 of 4 decisive verdicts; one tie between equal lengths
    texts = {("1", "a"): "x" * 300, ("1", "b"): "x" * 100, ("2", "a"): "x" * 300, ("2", "b"): "x" * 100,
             ("3", "a"): "x" * 100, ("3", "b"): "x" * 300, ("4", "a"): "x" * 100, ("4", "b"): "x" * 300,
             ("5", "a"): "x" * 50, ("5", "b"): "x" * 50}  # fmt: skip
    rows = [("1", "a", "b", GPT4, "1"), ("2", "a", "b", GPT4, "1"), ("3", "a", "b", GPT4, "2"),
            ("4", "a", "b", GPT4, "1"), ("5", "a", "b", GPT4, "tie")]  # fmt: skip
    add_judgments(store, rows, texts=texts)
    with store.session() as session:
        texts_by_id = answer_texts(session)
    frame = bias.with_lengths(load_judgments(store), texts_by_id)
    table = bias.length_bias(frame, bins=(-np.inf, -25, 25, np.inf)).set_index("bin")
    # each judgment seen from both answers: +200 side won 3 of 4, equal lengths tie
    assert table.loc["[25.0, inf)", "answers"] == 4
    assert table.loc["[25.0, inf)", "win_rate"] == pytest.approx(0.75)
    assert table.loc["[-inf, -25.0)", "win_rate"] == pytest.approx(0.25)
    assert table.loc["[-25.0, 25.0)", "win_rate"] == pytest.approx(0.5)
    fit = bias.length_fit(frame).iloc[0]
    assert fit.decisive == 4 and fit.longer_wins_rate == pytest.approx(0.75)
    assert math.isnan(fit.slope)  # slot 1 always wins when longer: separated, no finite slope


def test_a_placeholder_answer_is_never_measured(store, tmp_path):
    """An imported judgment whose answer text was never published (a placeholder) has no length:
    the length analysis leaves it out instead of counting it as 0 characters."""
    rows = [("1", "a", "b", GPT4, "1"), ("2", "a", "b", GPT4, "2"), ("3", "a", "b", GPT4, "2")]
    add_judgments(store, rows, texts={("1", "a"): "x" * 300, ("1", "b"): "x" * 100})
    make_placeholders(store, [("2", "b"), ("3", "a")])
    with store.session() as session:
        texts = answer_texts(session)
    frame = bias.with_lengths(load_judgments(store), texts)
    assert frame["prompt_key"].tolist() == ["1"] and frame["length_diff"].tolist() == [200]
    assert main(["analyze", "length", "--db", store.url, "--format", "csv", "--out", str(tmp_path)]) == 0
    assert pd.read_csv(tmp_path / "length.length_fit.csv").iloc[0].decisive == 1


def test_length_within_pairs_holds_the_models_fixed(store):
    """`strong` writes more and always wins; `x` and `y` are equal and length decides nothing between
    them. Pooled, the longer answer wins 6 of 8; within pairs, 4 of 4 (length and quality cannot be told
    apart: no slope) and 2 of 4 (slope 0)."""
    texts = {}
    rows = []
    for key in "1234":
        texts[(key, "strong")], texts[(key, "weak")] = "x" * 400, "x" * 100
        rows.append((key, "strong", "weak", GPT4, "1") if key in "12" else (key, "weak", "strong", GPT4, "2"))
    for key, x_len, winner in (("5", 300, "x"), ("6", 300, "y"), ("7", 100, "x"), ("8", 100, "y")):
        texts[(key, "x")], texts[(key, "y")] = "x" * x_len, "x" * 200
        rows.append((key, "x", "y", GPT4, "1" if winner == "x" else "2"))
    add_judgments(store, rows, texts=texts)
    with store.session() as session:
        by_id = answer_texts(session)
    frame = bias.with_lengths(load_judgments(store), by_id)
    assert bias.length_fit(frame).iloc[0].longer_wins_rate == pytest.approx(0.75)
    pairs = bias.length_within_pairs(frame).set_index("pair")
    assert pairs.loc["strong vs weak", "longer_wins_rate"] == 1.0 and math.isnan(
        pairs.loc["strong vs weak", "slope"]
    )
    assert pairs.loc["x vs y", "longer_wins_rate"] == 0.5 and pairs.loc["x vs y", "slope"] == pytest.approx(
        0, abs=1e-9
    )
    assert pairs["decisive"].tolist() == [4, 4]


def test_length_effect_with_model_strength_controlled():
    from tests.test_ratings import style_battles

    battles, texts = style_battles()
    frame = bias.with_lengths(battles.assign(group="gpt-4"), texts)
    effect = bias.length_effect(frame, texts, bootstrap=40).iloc[0]
    assert effect.lower > 0 and effect.elo_points_per_sd > 0 and effect.models == 3
    assert effect.matches == len(battles)


def test_cohen_kappa_textbook_two_by_two():
    # Wikipedia's worked example: 50 items, 20 + 15 agreements, kappa = 0.4
    assert agreement.cohen_kappa(np.array([[20, 5], [10, 15]])) == pytest.approx(0.4)


def test_fleiss_kappa_textbook_example():
    # Fleiss' kappa example (Wikipedia): 10 items, 14 raters, 5 categories, kappa = 0.210
    counts = np.array([
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ])  # fmt: skip
    assert agreement.fleiss_kappa(counts) == pytest.approx(0.20993, abs=5e-5)


HUMAN_VOTES = {"1": ("1", "1", "2"), "2": ("2", "2", "2"), "3": ("2", "2", "tie"), "4": ("1", "2", "tie")}
GPT4_VOTES = {"1": "1", "2": "2", "3": "tie", "4": "1"}


def _judge_vs_humans(store):
    rows = [(key, "a", "b", GPT4, verdict) for key, verdict in GPT4_VOTES.items()]
    for key, votes in HUMAN_VOTES.items():
        rows += [
            (key, "a", "b", f"human:{name}", vote)
            for name, vote in zip(("alice", "bob", "carol"), votes, strict=True)
        ]
    add_judgments(store, rows)


def test_agreement_with_pooled_humans_matches_hand_computation(store):
    _judge_vs_humans(store)
    frame = load_judgments(store, judges=["gpt-4", "human"])
    labels, unresolved = agreement.pooled_labels(frame)
    assert unresolved == 1  # item 4: one vote each
    items = agreement.paired_items(labels, "gpt-4", "human")
    assert list(items.label_a) == ["1", "2", "tie"] and list(items.label_b) == ["1", "2", "2"]
    table = agreement.verdict_agreement(items, reps=200).set_index("metric")
    assert table.loc["accuracy", "value"] == pytest.approx(2 / 3)
    assert table.loc["accuracy_without_ties", "value"] == pytest.approx(1.0)
    # po = 2/3, pe = (1*1 + 1*2 + 1*0) / 9 = 1/3 -> kappa = 1/2
    assert table.loc["cohen_kappa", "value"] == pytest.approx(0.5)
    assert table.loc["accuracy", "lower"] <= 2 / 3 <= table.loc["accuracy", "upper"]
    fleiss = agreement.annotator_agreement(frame, reps=50).set_index("group")
    # P_i = 1/3, 1, 1/3, 0 -> 5/12; category shares 3/12, 7/12, 2/12 -> Pe = 62/144
    assert fleiss.loc["human", "fleiss_kappa"] == pytest.approx(-2 / 82)
    assert fleiss.loc["human", "annotators"] == 3 and fleiss.loc["human", "items"] == 4
    assert "gpt-4" not in fleiss.index


def _mt_bench_arena(store):
    """GPT-4 in both orders on prompts 1, 2 and 4 (consistent a, inconsistent, consistent tie), in one
    order on prompt 3; six human votes, some in each order. Answer a is model a's (lower generation id)."""
    rows = (
        both_orders("1", "a", "b", GPT4, "1", "2")  # a wins in both orders
        + both_orders("2", "a", "b", GPT4, "1", "1")  # slot 1 wins twice: inconsistent, a tie
        + [("3", "a", "b", GPT4, "2")]  # one order only: not a vote under MT-bench's protocol
        + both_orders("4", "a", "b", GPT4, "tie", "tie")
        + [("1", "a", "b", "human:alice", "1"), ("1", "a", "b", "human:bob", "2"), ("1", "b", "a", "human:carol", "1"),
           ("2", "a", "b", "human:alice", "tie"), ("2", "b", "a", "human:bob", "2"), ("3", "a", "b", "human:alice", "2"),
           ("4", "b", "a", "human:carol", "both_bad")]
    )  # fmt: skip
    add_judgments(store, rows)


def test_mt_bench_agreement_combines_the_judges_orders_and_compares_every_human_vote(store):
    _mt_bench_arena(store)
    frame = load_judgments(store, judges=["gpt-4", "human"])
    table, left_out = agreement.mt_bench_agreement(frame, "gpt-4", "human", reps=100)
    assert left_out == {"one_order": 1, "inconsistent": 1}
    rows = table.set_index("ties")
    # with ties: prompt 1 a vs (a, b, b), prompt 2 tie vs (tie, a), prompt 4 tie vs tie -> 3 of 6
    assert rows.loc["with ties", ["pairs", "comparisons", "agree"]].tolist() == [3, 6, 3]
    assert rows.loc["with ties", "agreement"] == pytest.approx(0.5)
    # without ties: only prompt 1 is left (GPT-4 ties on 2 and 4): 1 of 3
    assert rows.loc["without ties", ["pairs", "comparisons", "agree"]].tolist() == [1, 3, 1]
    assert rows.loc["without ties", "lower"] == pytest.approx(1 / 3)  # one pair: nothing to resample
    assert table["turn"].tolist() == [1, 1]
    # the majority protocol drops prompt 1's split vote in order (a, b) (alice 1, bob 2) as "no majority"
    labels, unresolved = agreement.pooled_labels(frame)
    assert len(agreement.paired_items(labels, "gpt-4", "human")) == 5 and unresolved == 1


def test_agreement_command_names_its_protocol(store, db_url, capsys, tmp_path):
    _mt_bench_arena(store)
    args = [
        "analyze",
        "agreement",
        "--db",
        db_url,
        "--judges",
        "gpt-4,human",
        "--bootstrap",
        "20",
        "--format",
        "json",
    ]
    assert main([*args, "--protocol", "mt-bench", "--plot", str(tmp_path / "mt.png")]) == 0
    data = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert data["summary"][0]["protocol"] == "mt-bench" and "two orders" in data["summary"][0]["what"]
    assert [row["agreement"] for row in data["agreement"]] == pytest.approx([0.5, 1 / 3])
    assert (tmp_path / "mt.png").read_bytes()[:4] == b"\x89PNG"
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)["summary"][0]
    assert summary["protocol"] == "majority" and "majority label" in summary["what"]


def test_system_level_kendall_and_spearman():
    # judge a ranks a > b > c, judge b ranks b > a > c: one discordant pair of three
    rows = []
    for prompt in "123":
        for m1, m2, la, lb in (("a", "b", "1", "2"), ("b", "c", "1", "1"), ("a", "c", "1", "1")):
            rows.append({"benchmark": "vicuna", "prompt_key": prompt, "generation_1": 0, "generation_2": 0,
                         "model_1": m1, "model_2": m2, "label_a": la, "label_b": lb})  # fmt: skip
    items = pd.DataFrame(rows)
    scores = agreement.system_scores(items).set_index("model")
    assert list(scores.score_a) == [1.0, 0.5, 0.0] and scores.loc["b", "score_b"] == 1.0
    table = agreement.system_agreement(items, reps=100).set_index("metric")
    assert table.loc["kendall_tau", "value"] == pytest.approx(1 / 3)
    assert table.loc["spearman", "value"] == pytest.approx(0.5)
    # every prompt is the same, so resampling prompts cannot move the statistic
    assert table.loc["kendall_tau", "lower"] == pytest.approx(1 / 3)


def test_worst_losses_failed_prompts_and_tags(store):
    rows = [("1", "strong", "weak", GPT4, "2"), ("2", "strong", "mid", GPT4, "2"), ("3", "weak", "strong", GPT4, "2"),
            ("1", "mid", "weak", GPT4, "1"), ("1", "ref", "strong", GPT4, "1"), ("1", "ref", "weak", GPT4, "1"),
            ("2", "ref", "strong", GPT4, "tie"), ("2", "weak", "ref", GPT4, "2")]  # fmt: skip
    add_judgments(store, rows)
    ratings = {"strong": 1200.0, "mid": 1000.0, "weak": 800.0, "ref": 1300.0}
    losses = lemons.worst_losses(load_judgments(store), ratings, "strong", top=5)
    assert list(losses.opponent) == ["weak", "mid", "ref"] and list(losses.gap) == [400.0, 200.0, -100.0]
    assert list(losses.slot) == [1, 1, 2]
    with store.session() as session:
        reasons = lemons.with_reasons(session, losses)
    assert reasons.reason.iloc[0] == "reason: weak 2"
    failed = lemons.failed_prompts(load_judgments(store), reference="ref")
    assert list(failed.prompt_key) == ["1"] and failed.models.iloc[0] == 2  # prompt 2: strong tied
    tag(store, GPT4, "1", "strong", "weak", "alice", "weak answer was wrong")
    with store.session() as session:
        tagged = lemons.tagged(session, model="weak")
    assert list(tagged.note) == ["weak answer was wrong"] and tagged.reason.iloc[0] == "reason: weak 2"
    with pytest.raises(UserError, match="model 'nobody' has no judgments"):
        lemons.worst_losses(load_judgments(store), ratings, "nobody")


def test_judge_names_resolve_or_fail_clearly():
    names = ["openai:gpt-4-0613", "openai:gpt-4o", "human:alice", "human:bob", "gpt-3.5-turbo"]
    assert resolve_judge(names, "gpt-4") == ["openai:gpt-4-0613"]
    assert resolve_judge(names, "human") == ["human:alice", "human:bob"]
    assert resolve_judge(names, "gpt-3.5-turbo") == ["gpt-3.5-turbo"]
    with pytest.raises(UserError, match=r"unknown judge 'claude'.*human \(2 annotators\)"):
        resolve_judge(names, "claude")
    with pytest.raises(UserError, match="ambiguous"):
        resolve_judge(["openai:gpt-4", "azure:gpt-4"], "gpt-4")


def test_empty_store_and_unknown_judge_are_user_errors(store, db_url, capsys):
    with pytest.raises(UserError, match="no judgments in .*import a release"):
        load_judgments(store)
    assert main(["analyze", "bias", "--db", db_url]) == 2
    assert "no judgments" in capsys.readouterr().err
    add_judgments(store, [("1", "a", "b", GPT4, "1")])
    assert main(["analyze", "agreement", "--db", db_url, "--judges", "gpt-4,claude"]) == 2
    assert "unknown judge 'claude'" in capsys.readouterr().err
    assert main(["analyze", "agreement", "--db", db_url, "--judges", "gpt-4"]) == 2


def test_commands_write_tables_and_plots(store, db_url, tmp_path, capsys):
    _judge_vs_humans(store)
    add_judgments(store, both_orders("5", "a", "b", GPT4, "1", "1"))
    out = tmp_path / "out"
    args = ["--db", db_url, "--benchmark", "vicuna", "--bootstrap", "50"]
    assert main(["analyze", "agreement", *args, "--judges", "gpt-4,human", "--format", "json", "--out", str(out),
                 "--plot", str(tmp_path / "agree.png")]) == 0  # fmt: skip
    data = json.loads((out / "agreement.json").read_text())
    assert data["summary"][0]["items"] == 3 and data["annotators"][0]["annotators"] == 3
    assert (
        main(
            [
                "analyze",
                "bias",
                *args,
                "--format",
                "csv",
                "--out",
                str(out),
                "--plot",
                str(tmp_path / "bias.png"),
            ]
        )
        == 0
    )
    position = pd.read_csv(out / "bias.position.csv").set_index("group")
    assert position.loc[GPT4, "judgments"] == 6
    assert pd.read_csv(out / "bias.order.csv").set_index("group").loc[GPT4, "flip"] == 1
    assert main(["analyze", "length", *args, "--plot", str(tmp_path / "length.png")]) == 0
    printed = capsys.readouterr().out
    assert all(
        f"== {name} ==" in printed for name in ("length_fit", "length_within_pairs", "length_controlled")
    )
    assert main(["analyze", "lemons", *args, "--model", "b", "--plot", str(tmp_path / "lemons.png")]) == 0
    assert "reason: a 1" in capsys.readouterr().out
    for name in ("agree", "bias", "length", "lemons"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
