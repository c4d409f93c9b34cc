"""MT-bench on both turns: FastChat's multi-turn templates over real HTTP, the turn in the store,
FastChat's result tables per turn, and FastChat export and re-import."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from arena.benchmarks import ensure_prompts
from arena.cli import main
from arena.fastchat_results import export_records, pairwise_table, single_tables
from arena.import_fastchat import import_fastchat
from arena.query.judgments import read_judgments
from arena.query.writes import insert_ignore
from arena.store import Contestant, Generation, Prompt, Store
from judges.judge import Case
from judges.templates import FASTCHAT_LABEL, FASTCHAT_RATING, Turn, load_template
from tests.scripted_server import scripted_server_fixture  # noqa: F401

QUALITY = {"alpha": (3, 1), "beta": (2, 2)}
"""Per model, the quality of its turn-1 and turn-2 answers: alpha wins turn 1, beta turn 2."""
KEYS = ("81", "111")  # writing (no reference) and math (reference-guided)


def fill(store: Store, shared_data: Path) -> None:
    ensure_prompts(store, "mt-bench", shared_data)
    with store.session() as session:
        insert_ignore(session, Contestant, [{"name": m} for m in QUALITY])
        pid = {p.key: p.id for p in session.query(Prompt).filter(Prompt.key.in_(KEYS))}
        cid = {c.name: c.id for c in session.query(Contestant)}
        rows = []
        for key in KEYS:
            for model, (q1, q2) in QUALITY.items():
                turns = [
                    f"{model} first answer to {key}: quality {q1}.",
                    f"{model} follow-up on {key}: quality {q2}.",
                ]
                rows.append(
                    {
                        "prompt_id": pid[key],
                        "contestant_id": cid[model],
                        "text": turns[0],
                        "turn_texts": turns,
                    }
                )
        insert_ignore(session, Generation, rows)


def fastchat_judge(body: dict[str, Any]) -> str:
    """Reads the qualities in the prompt in order of appearance: the last one of each half is the
    judged turn's (A's conversation comes before B's); single grading rates the last one."""
    found = [int(q) for q in re.findall(r"quality (\d+)", body["messages"][-1]["content"])]
    if "[[rating]]" in body["messages"][0]["content"] + body["messages"][-1]["content"]:
        return f"A fair answer.\n\nRating: [[{found[-1]}]]"
    a, b = found[len(found) // 2 - 1], found[-1]
    return "Explanation.\n\n" + ("[[A]]" if a > b else "[[B]]" if b > a else "[[C]]")


def judge(db_url: str, url: str, template: str, *extra: str) -> int:
    return main(["judge", "--db", db_url, "--benchmark", "mt-bench", "--models", "alpha,beta",
                 "--base-url", url, "--concurrency", "2", "--template", template, *extra])  # fmt: skip


def test_multi_turn_templates_show_both_turns_with_references() -> None:
    pair = load_template("mt-bench-pair-multi-turn")
    assert (pair.id, pair.turn, pair.output) == ("mt-bench-pair-v2-multi-turn", 2, FASTCHAT_LABEL)
    assert pair.variant("math", has_reference=True).name == "pair-math-v1-multi-turn"
    earlier = (Turn("Q1?", "a says one", "b says one", "ref one"),)
    user = pair.messages(
        "Q2?", "a says two", "b says two", category="math", reference="ref two", earlier=earlier
    )
    content = user[1]["content"]
    for text in ("Q1?", "Q2?", "a says one", "a says two", "b says one", "b says two", "ref one", "ref two"):
        assert text in content
    assert content.index("a says two") < content.index("b says one")  # A's conversation, then B's
    with pytest.raises(ValueError, match="judges turn 2"):
        pair.messages("Q2?", "a", "b")
    single = load_template("mt-bench-single-multi-turn")
    assert (single.turn, single.output) == (2, FASTCHAT_RATING)
    graded = single.messages("Q2?", "mine two", earlier=(Turn("Q1?", "mine one"),))[1]["content"]
    assert "mine one" in graded and "mine two" in graded and "{" not in graded.replace("{{", "")


def test_case_answers_cover_every_turn_for_masking() -> None:
    case = Case("Q2", "a2", "b2", earlier=(Turn("Q1", "a1", "b1", None),))
    assert case.answers == ["a1", "b1", "a2", "b2"] and not case.has_references


def test_both_turns_judged_stored_shown_exported_and_reimported(
    store: Store, db_url: str, shared_data: Path, scripted_server, tmp_path: Path, capsys
) -> None:
    fill(store, shared_data)
    scripted_server.reply = fastchat_judge
    assert judge(db_url, scripted_server.url, "mt-bench-pair", "--turns", "1") == 0
    assert len(scripted_server.requests) == 4
    args = ["judge", "--db", db_url, "--benchmark", "mt-bench", "--models", "alpha,beta", "--base-url",
            scripted_server.url]  # fmt: skip
    assert main(args) == 0  # the benchmark's default: FastChat's pair templates, every turn
    sent = len(scripted_server.requests)
    assert sent == 8
    assert judge(db_url, scripted_server.url, "mt-bench-pair-multi-turn") == 0  # resumes: nothing new
    assert len(scripted_server.requests) == sent
    bodies = [r["body"] for r in scripted_server.requests]
    assert {(b["temperature"], b["max_tokens"]) for b in bodies} == {(0.0, 2048)}  # FastChat's settings
    turn_two = [
        b["messages"][-1]["content"]
        for b in bodies
        if "Conversation with User" in b["messages"][-1]["content"]
    ]
    assert len(turn_two) == 4 and all("first answer to" in t and "follow-up on" in t for t in turn_two)

    frame = read_judgments(store, benchmark="mt-bench")
    assert len(frame) == 8 and (frame.status == "ok").all()
    winner = frame.model_1.where(frame.verdict == "1", frame.model_2)
    assert set(winner[frame.turn == 1]) == {"alpha"} and set(winner[frame.turn == 2]) == {"beta"}
    assert len(read_judgments(store, turn=2)) == 4

    records = export_records(store)
    assert len(records.pair) == 4 and records.one_order_only == 0
    names = {(r["turn"], r["question_id"]): r["judge"][1] for r in records.pair}
    assert names == {(1, 81): "pair-v2", (1, 111): "pair-math-v1", (2, 81): "pair-v2-multi-turn",
                     (2, 111): "pair-math-v1-multi-turn"}  # fmt: skip
    by_turn = {t: pairwise_table(records.pair, turn=t) for t in (1, 2, None)}
    assert by_turn[1].loc["alpha", "win_rate"] == 1.0 and by_turn[2].loc["beta", "win_rate"] == 1.0
    assert by_turn[None].loc["alpha", "win_rate_adjusted"] == 0.5

    assert main(["mt-bench", "show", "--db", db_url]) == 0
    shown = capsys.readouterr().out
    assert "pairwise-all, turn 1" in shown and "pairwise-all, turn 2" in shown and "both turns" in shown

    out = tmp_path / "exported"
    assert main(["mt-bench", "export", str(out), "--db", db_url, "--judge", "gpt-4"]) == 0
    pair_file = out / "gpt-4_pair.jsonl"
    lines = [json.loads(line) for line in pair_file.read_text().splitlines()]
    assert {r["turn"] for r in lines} == {1, 2}
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    import_fastchat(fresh, [pair_file], "mt-bench", shared_data, progress=False)
    again = read_judgments(fresh).set_index(["turn", "prompt_key", "model_1", "model_2"]).verdict.sort_index()
    original = (
        read_judgments(store).set_index(["turn", "prompt_key", "model_1", "model_2"]).verdict.sort_index()
    )
    assert again.to_dict() == original.to_dict()


def test_single_grading_per_turn_and_average(
    store: Store, db_url: str, shared_data: Path, scripted_server
) -> None:
    fill(store, shared_data)
    scripted_server.reply = fastchat_judge
    assert judge(db_url, scripted_server.url, "mt-bench-single") == 0  # both turns
    records = export_records(store)
    assert len(records.single) == 8  # 2 questions x 2 models x 2 turns, each answer graded once
    tables = single_tables(records.single)
    assert list(tables) == ["First turn", "Second turn", "Average"]
    assert tables["First turn"].score.to_dict() == {"alpha": 3.0, "beta": 2.0}
    assert tables["Second turn"].score.to_dict() == {"beta": 2.0, "alpha": 1.0}
    assert tables["Average"].score.to_dict() == {"alpha": 2.0, "beta": 2.0}


def test_turn_must_match_the_judge_prompt_on_import(tmp_path: Path, store: Store, shared_data: Path) -> None:
    from foundations.sources import BenchmarkFileError

    bad = tmp_path / "pair.jsonl"
    bad.write_text(json.dumps({"question_id": 81, "model_1": "a", "model_2": "b", "g1_winner": "model_1",
                               "g2_winner": "model_1", "judge": ["gpt-4", "pair-v2"], "turn": 2}) + "\n")  # fmt: skip
    with pytest.raises(BenchmarkFileError, match=r"pair\.jsonl, line 1, field 'turn'.*multi-turn"):
        import_fastchat(store, [bad], "mt-bench", shared_data, progress=False)


def test_pairwise_table_follows_fastchats_show_result() -> None:
    def rec(g1: str, g2: str, m1: str = "a", m2: str = "b", turn: int = 1) -> dict:
        return {"model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2, "turn": turn}

    records = [rec("model_1", "model_1"), rec("model_1", "model_2"), rec("tie", "tie"), rec("error", "model_1"),
               rec("model_2", "model_2", "a", "c", turn=2)]  # fmt: skip
    table = pairwise_table(records)
    assert table.loc["a", ["win", "loss", "tie"]].tolist() == [1, 1, 2]  # orders that disagree: a tie
    assert table.loc["b", ["win", "loss", "tie"]].tolist() == [0, 1, 2]
    assert table.loc["a", "win_rate_adjusted"] == (1 + 0.5 * 2) / 4
    baseline = pairwise_table(records, baseline="c")
    assert list(baseline.index) == ["a"] and baseline.loc["a", "loss"] == 1
    assert list(pairwise_table(records, turn=2).index) == ["c", "a"]


def test_turns_pick_the_templates() -> None:
    from judges.templates import templates_for_turns

    assert [t.id for t in templates_for_turns("mt-bench-pair")] == [
        "mt-bench-pair-v2",
        "mt-bench-pair-v2-multi-turn",
    ]
    assert [t.turn for t in templates_for_turns("mt-bench-single-v1", "2")] == [2]
    assert [t.turn for t in templates_for_turns("mt-bench-pair-multi-turn")] == [2]
    assert [t.id for t in templates_for_turns("qlora-vicuna")] == ["qlora-vicuna-threeclass"]
    with pytest.raises(ValueError, match="judges turn 1 only"):
        templates_for_turns("qlora-vicuna", "2")
