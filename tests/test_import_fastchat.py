"""Import of FastChat llm_judge files written here in FastChat's own formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from arena.cli import main
from arena.import_fastchat import file_kind, import_fastchat
from arena.query.judgments import judgments_frame
from arena.store import Generation, Judgment, Store
from foundations.sources import BenchmarkFileError


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def answers(tmp_path: Path, model: str, qids=(81, 82)) -> Path:
    rows = [{"question_id": q, "answer_id": f"{model}-{q}", "model_id": model, "tstamp": 1.0,
             "choices": [{"index": 0, "turns": [f"{model} turn 1 of {q}", f"{model} turn 2 of {q}"]}]}
            for q in qids]  # fmt: skip
    return _jsonl(tmp_path / f"{model}.jsonl", rows)


def pairwise(tmp_path: Path) -> Path:
    base = {
        "model_1": "alpha",
        "model_2": "beta",
        "g1_user_prompt": "...",
        "g2_user_prompt": "...",
        "tstamp": 2.0,
    }
    return _jsonl(tmp_path / "gpt-4_pair.jsonl", [
        {**base, "question_id": 81, "g1_winner": "model_1", "g2_winner": "model_1", "judge": ["gpt-4", "pair-v2"],
         "g1_judgment": "A is better [[A]]", "g2_judgment": "B is better [[B]]", "turn": 1},
        {**base, "question_id": 82, "g1_winner": "error", "g2_winner": "tie", "judge": ["gpt-4", "pair-v2"],
         "g1_judgment": "no verdict", "g2_judgment": "[[C]]", "turn": 1},
        {**base, "question_id": 81, "g1_winner": "model_2", "g2_winner": "tie",
         "judge": ["gpt-4", "pair-v2-multi-turn"], "g1_judgment": "[[B]]", "g2_judgment": "[[C]]", "turn": 2},
    ])  # fmt: skip


def single(tmp_path: Path) -> Path:
    return _jsonl(tmp_path / "gpt-4_single.jsonl", [
        {"question_id": 81, "model": "alpha", "judge": ["gpt-4", "single-v1"], "user_prompt": "...",
         "judgment": "Rating: [[8]]", "score": 8, "turn": 1, "tstamp": 3.0},
        {"question_id": 81, "model": "beta", "judge": ["gpt-4", "single-v1"], "user_prompt": "...",
         "judgment": "no rating", "score": -1, "turn": 1, "tstamp": 3.0},
    ])  # fmt: skip


def battles(tmp_path: Path) -> Path:
    rows = [
        {"question_id": 83, "model_a": "alpha", "model_b": "gamma", "winner": "tie (bothbad)", "judge": "expert_0",
         "turn": 1},
        {"question_id": 83, "model_a": "gamma", "model_b": "alpha", "winner": "model_a", "judge": "gpt4_pair",
         "turn": 1, "conversation_a": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "g says"}]},
    ]  # fmt: skip
    path = tmp_path / "clean_battle.json"
    path.write_text(json.dumps(rows, indent=1))
    return path


def test_file_kinds(tmp_path: Path) -> None:
    kinds = [
        file_kind(p)
        for p in (answers(tmp_path, "alpha"), pairwise(tmp_path), single(tmp_path), battles(tmp_path))
    ]
    assert kinds == ["answers", "pairwise", "single", "battles"]


def test_answers_and_pairwise_judgments(tmp_path: Path, store: Store, shared_data: Path) -> None:
    files = [pairwise(tmp_path), answers(tmp_path, "alpha"), answers(tmp_path, "beta")]
    report = import_fastchat(store, files, "mt-bench", shared_data, progress=False)
    assert report.new_rows["prompts"] == 80 and report.new_rows["generations"] == 4
    assert report.new_rows["judgments"] == 6 and report.unparsed == 1
    with store.session() as s:
        frame = judgments_frame(s).set_index(["template_id", "prompt_key", "model_1"])
        gen = s.scalars(select(Generation).where(Generation.external_id == "alpha-81")).one()
        assert (
            gen.turn_texts == ["alpha turn 1 of 81", "alpha turn 2 of 81"]
            and gen.text == "alpha turn 1 of 81"
        )
    assert frame.loc[("fastchat-pair-v2", "81", "alpha"), "verdict"] == "1"  # game 1: alpha shown first, won
    assert frame.loc[("fastchat-pair-v2", "81", "beta"), "verdict"] == "2"  # game 2: beta first, alpha won
    assert frame.loc[("fastchat-pair-v2", "82", "alpha"), "status"] == "unparsed"
    assert frame.loc[("fastchat-pair-v2", "82", "beta"), "verdict"] == "tie"
    assert frame.loc[("fastchat-pair-v2-multi-turn", "81", "alpha"), "verdict"] == "2"
    assert frame.loc[("fastchat-pair-v2", "81", "alpha"), "judge"] == "gpt-4"
    hashes = set(frame["template_hash"])
    assert len(hashes) == 2 and all(len(h) == 64 for h in hashes)


def test_reimport_adds_nothing(tmp_path: Path, store: Store, shared_data: Path) -> None:
    files = [pairwise(tmp_path), answers(tmp_path, "alpha"), answers(tmp_path, "beta"), single(tmp_path)]
    first = import_fastchat(store, files, "mt-bench", shared_data, progress=False)
    again = import_fastchat(store, files, "mt-bench", shared_data, progress=False)
    assert again.imported == 0 and again.already_present == first.imported
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 8


def test_single_scores(tmp_path: Path, store: Store, shared_data: Path) -> None:
    report = import_fastchat(store, [single(tmp_path)], "mt-bench", shared_data, progress=False)
    assert report.unparsed == 1
    with store.session() as s:
        rows = s.scalars(select(Judgment).order_by(Judgment.id)).all()
        assert [(j.score1, j.status, j.verdict) for j in rows] == [
            (8.0, "ok", None),
            (None, "unparsed", None),
        ]
        assert all(j.generation1_id == j.generation2_id and j.meta["mode"] == "single" for j in rows)
        texts = {g.text for g in s.scalars(select(Generation))}
    assert texts == {""}  # no answer file: placeholders


def test_battles_make_placeholders_that_answers_fill_later(
    tmp_path: Path, store: Store, shared_data: Path
) -> None:
    import_fastchat(store, [battles(tmp_path)], "mt-bench", shared_data, progress=False)
    with store.session() as s:
        frame = judgments_frame(s)
        by_judge = frame.set_index("judge")
        assert by_judge.loc["human:expert_0", "verdict"] == "both_bad"
        assert by_judge.loc["gpt4_pair", "verdict"] == "1"
        gamma = s.scalars(select(Generation).where(Generation.text == "g says")).one()
        assert gamma.turn_texts == ["g says"]
        alpha = s.scalars(select(Generation).where(Generation.text == "")).one()
        assert alpha.meta["text_missing"]
    report = import_fastchat(
        store, [answers(tmp_path, "alpha", qids=(83,))], "mt-bench", shared_data, progress=False
    )
    assert report.new_rows["generations"] == 0
    with store.session() as s:
        filled = s.get(Generation, alpha.id)
        assert filled.text == "alpha turn 1 of 83" and not filled.meta.get("text_missing")
        assert filled.external_id == "alpha-83"


def test_truncated_jsonl_is_refused(tmp_path: Path, store: Store, shared_data: Path) -> None:
    path = pairwise(tmp_path)
    path.write_text(path.read_text()[:-30])
    with pytest.raises(BenchmarkFileError, match=r"gpt-4_pair\.jsonl, line 3: not valid JSON"):
        import_fastchat(store, [path], "mt-bench", shared_data, progress=False)
    broken = tmp_path / "clean_battle.json"
    broken.write_text(battles(tmp_path).read_text()[:-5])
    with pytest.raises(BenchmarkFileError, match="clean_battle.json, line"):
        import_fastchat(store, [broken], "mt-bench", shared_data, progress=False)


def test_missing_field_and_unknown_question_leave_store_untouched(
    tmp_path: Path, store: Store, shared_data: Path
) -> None:
    rows = [json.loads(line) for line in pairwise(tmp_path).read_text().splitlines()]
    del rows[1]["model_2"]
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(BenchmarkFileError, match=r"bad\.jsonl, line 2, field 'model_2': missing"):
        import_fastchat(store, [path], "mt-bench", shared_data, progress=False)
    rows = [json.loads(line) for line in answers(tmp_path, "alpha").read_text().splitlines()]
    rows[1]["question_id"] = 9999
    path = _jsonl(tmp_path / "alpha-bad.jsonl", rows)
    with pytest.raises(BenchmarkFileError, match="question '9999' is not in benchmark 'mt-bench'"):
        import_fastchat(store, [path], "mt-bench", shared_data, progress=False)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Generation)) == 0


def test_cli_end_to_end(tmp_path: Path, db_url: str, shared_data: Path, capsys) -> None:
    files = [str(p) for p in (answers(tmp_path, "alpha"), answers(tmp_path, "beta"), pairwise(tmp_path))]
    assert main(["import", "fastchat", *files, "--from", str(shared_data), "--db", db_url]) == 0
    assert "records read" in capsys.readouterr().out
    bad = tmp_path / "empty.jsonl"
    bad.write_text('{"hello": 1}\n')
    assert main(["import", "fastchat", str(bad), "--from", str(shared_data), "--db", db_url]) == 2
    assert "not a FastChat" in capsys.readouterr().err
    with Store(db_url).session() as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 6


def test_a_local_model_of_the_same_name_is_not_mixed_in(
    tmp_path: Path, store: Store, shared_data: Path
) -> None:
    from arena.imports import ImportConflict
    from arena.query.contestants import upsert_contestant

    with store.session() as s:
        upsert_contestant(s, "alpha", kind="local")
    with pytest.raises(ImportConflict, match="alpha already exist"):
        import_fastchat(store, [answers(tmp_path, "alpha")], "mt-bench", shared_data, progress=False)
