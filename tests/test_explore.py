"""Explore queries on hand-made judgments in a real store: filters, upsets, flips, disagreements, tags."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from arena.explore import (
    disagreements,
    export_selection,
    filter_judgments,
    judgment_detail,
    position_flips,
    tag_judgment,
    upsets,
)
from arena.query.judgments import judgments_frame
from arena.store import Store
from tests.arena_seed import add_judgment, seed_arena


@pytest.fixture
def arena(store: Store) -> tuple[Store, dict]:
    g = seed_arena(store, payload=False)
    ids = {
        # prompt 0: GPT-4 consistent across orders (alpha wins both), a person agrees
        "consistent_ab": add_judgment(store, g["0", "alpha"], g["0", "beta"], "1"),
        "consistent_ba": add_judgment(store, g["0", "beta"], g["0", "alpha"], "2"),
        "human_agrees": add_judgment(store, g["0", "alpha"], g["0", "beta"], "1", judge="human:ann"),
        # prompt 2: GPT-4 picks slot 1 both times = a position flip; a person says beta
        "flip_ab": add_judgment(store, g["2", "alpha"], g["2", "beta"], "1", raw="First is better. [[A]]"),
        "flip_ba": add_judgment(store, g["2", "beta"], g["2", "alpha"], "1"),
        "human_2": add_judgment(store, g["2", "beta"], g["2", "alpha"], "1", judge="human:bob"),
        # prompt 3: gamma beats alpha (an upset if alpha is rated higher)
        "upset": add_judgment(store, g["3", "gamma"], g["3", "alpha"], "1"),
        # prompt 1: a person says tie, another model judge says both bad: no disagreement, both
        # mean "no winner"
        "human_tie": add_judgment(store, g["1", "alpha"], g["1", "gamma"], "tie", judge="human:ann"),
        "judge_bad": add_judgment(store, g["1", "alpha"], g["1", "gamma"], "both_bad", judge="openai:gpt-4o"),
        # a flip by two *different* judges is not a position flip
        "other_judge": add_judgment(store, g["1", "beta"], g["1", "gamma"], "1", judge="openai:gpt-4o"),
        "other_judge2": add_judgment(store, g["1", "gamma"], g["1", "beta"], "1"),
    }
    return store, ids


def frame_of(store: Store) -> pd.DataFrame:
    with store.session() as s:
        return judgments_frame(s)


def test_filters(arena: tuple[Store, dict]) -> None:
    store, ids = arena
    frame = frame_of(store)
    assert len(frame) == len(ids)
    humans = filter_judgments(frame, judge="humans")
    assert set(humans["judgment_id"]) == {ids["human_agrees"], ids["human_2"], ids["human_tie"]}
    models = filter_judgments(frame, judge="GPT-4 (model judges)")
    assert len(models) == len(ids) - 3
    assert set(filter_judgments(frame, judge="openai:gpt-4o")["judgment_id"]) == {
        ids["judge_bad"], ids["other_judge"]
    }  # fmt: skip
    gamma_wins = filter_judgments(frame, model="gamma", outcome="win")
    assert set(gamma_wins["judgment_id"]) == {ids["upset"], ids["other_judge2"]}
    alpha_losses_to_beta = filter_judgments(frame, model="alpha", opponent="beta", outcome="loss")
    assert set(alpha_losses_to_beta["judgment_id"]) == {ids["flip_ba"], ids["human_2"]}
    assert set(filter_judgments(frame, category="writing")["judgment_id"]) == {
        ids["other_judge"], ids["other_judge2"], ids["upset"], ids["human_tie"], ids["judge_bad"]
    }  # fmt: skip
    assert filter_judgments(frame, benchmark="mt-bench").empty


def test_upsets_biggest_gap_first(arena: tuple[Store, dict]) -> None:
    store, ids = arena
    found = upsets(frame_of(store), {"alpha": 1100.0, "beta": 1000.0, "gamma": 900.0})
    assert found["judgment_id"].tolist()[0] == ids["upset"]
    assert found.loc[0, ["winner", "loser", "gap"]].tolist() == ["gamma", "alpha", 200.0]
    assert set(found["judgment_id"]) == {ids["upset"], ids["flip_ba"], ids["human_2"], ids["other_judge2"]}
    assert found["gap"].is_monotonic_decreasing


def test_position_flips_need_same_judge_and_template(arena: tuple[Store, dict]) -> None:
    store, ids = arena
    flips = position_flips(frame_of(store))
    assert flips["judgment_id"].tolist() == [ids["flip_ab"], ids["flip_ba"]]
    assert flips["flip"].tolist() == [1, 1]
    assert position_flips(frame_of(store).iloc[0:0]).empty


def test_disagreements_between_people_and_gpt4(arena: tuple[Store, dict]) -> None:
    store, ids = arena
    found = disagreements(frame_of(store))
    assert set(found["judgment_id"]) == {ids["flip_ab"], ids["flip_ba"], ids["human_2"]}
    assert found["pair"].nunique() == 1


def test_detail_tag_and_export(arena: tuple[Store, dict], tmp_path) -> None:
    store, ids = arena
    with store.session() as s:
        assert tag_judgment(s, ids["flip_ab"], "ann", "lemon", "follows position") is True
    with store.session() as s:
        assert tag_judgment(s, ids["flip_ab"], "ann", "lemon", "really follows position") is False
        with pytest.raises(ValueError, match="lemon, cherry"):
            tag_judgment(s, ids["flip_ab"], "ann", "rotten")
        with pytest.raises(KeyError):
            tag_judgment(s, 10_000, "ann", "cherry")
    with store.session() as s:
        detail = judgment_detail(s, ids["flip_ab"])
        assert detail["rationale"] == "First is better. [[A]]"
        assert detail["answer_1"] == "alpha answers question 2."
        assert detail["turns"] == ["Question number 2: explain something."]
        assert detail["tags"] == [{"annotator": "ann", "tag": "lemon", "note": "really follows position"}]
        as_json = export_selection(s, [ids["flip_ab"], ids["upset"]], tmp_path / "sel.json")
        as_csv = export_selection(s, [ids["flip_ab"], ids["upset"]], tmp_path / "sel.csv")
    rows = json.loads(as_json.read_text())
    assert [r["judgment_id"] for r in rows] == [ids["flip_ab"], ids["upset"]]
    table = pd.read_csv(as_csv)
    assert table["judgment_id"].tolist() == [ids["flip_ab"], ids["upset"]]
    assert table.loc[0, "rationale"] == "First is better. [[A]]"
