"""Import of the QLoRA evaluation release: counts, unparsed verdicts, slots proven by answer ids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import shortuuid
from sqlalchemy import func, select

from arena.cli import main
from arena.import_qlora import import_qlora_release
from arena.qlora_release import contestant_name, derived_answer_id, judged_text
from arena.query.judgments import judgments_frame
from arena.store import Contestant, Generation, Judgment, Prompt, Store
from foundations.sources import BenchmarkFileError

RATINGS = "qlora-eval/ratings-gpt4"
FLAN_FILE = (
    "vicuna/relative-gpt-3.5/13b-flan-vicuna-generations-topp0.9-temp0.7-vs-gpt-3.5-gpt4-reviewer.jsonl"
)
HH_FILE = (
    "vicuna/relative-gpt-3.5/13b-hh-rlhf-vicuna-generations-topp0.9-temp0.7-vs-gpt-3.5-gpt4-reviewer.jsonl"
)


@pytest.fixture(scope="module")
def imported(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('qlora') / 'arena.db'}")
    report = import_qlora_release(store, shared_data / "qlora-eval", progress=False)
    with store.session() as s:
        frame = judgments_frame(s)
    return store, report, frame


def _records(shared_data: Path, folder: str) -> list[dict]:
    out = []
    for path in sorted((shared_data / RATINGS / folder).glob("*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines()]
    return out


def test_counts_match_the_release(imported, shared_data: Path) -> None:
    _store, report, frame = imported
    counts = frame.groupby("template_id").size().to_dict()
    pairwise, oa = _records(shared_data, "vicuna/pairwise"), _records(shared_data, "oa")
    relative = _records(shared_data, "vicuna/relative-gpt-3.5")
    assert (len(pairwise), len(oa), len(relative)) == (4480, 40026, 5760)
    assert counts["qlora-vicuna-threeclass"] == 4480
    assert counts["qlora-oa-threeclass"] == 40026  # 42 files: 7 models, every pair in both orders, 953 each
    assert counts["qlora-vicuna-relative"] == 5760 - 160  # two files hold answers the release lacks
    assert report.skipped == 160
    assert report.records_read == 4480 + 40026 + 5760 + 37 * 80


def test_unparsed_verdicts_are_kept_with_raw_text(imported, shared_data: Path) -> None:
    _store, report, frame = imported
    unparsed = frame[frame.status == "unparsed"].groupby("template_id").size().to_dict()
    files_pairwise = sum(r["score"] == -1 for r in _records(shared_data, "vicuna/pairwise"))
    files_oa = sum(r["score"] == -1 for r in _records(shared_data, "oa"))
    assert unparsed["qlora-vicuna-threeclass"] == files_pairwise == 13
    assert unparsed["qlora-oa-threeclass"] == files_oa == 1482
    skipped = {f"{RATINGS}/{FLAN_FILE}", f"{RATINGS}/{HH_FILE}"}
    files_relative = sum(
        json.loads(line)["score"] == [-1, -1]
        for path in (shared_data / RATINGS / "vicuna/relative-gpt-3.5").glob("*.jsonl")
        if f"qlora-eval/{path.relative_to(shared_data / 'qlora-eval').as_posix()}" not in skipped
        for line in path.read_text().splitlines()
    )
    assert unparsed["qlora-vicuna-relative"] == files_relative == 60
    assert report.unparsed == 13 + 1482 + 60
    assert frame[frame.status == "unparsed"].verdict.isna().all()
    assert set(frame[frame.status == "ok"].verdict) == {"1", "2", "tie"}


def test_contestant_names() -> None:
    assert contestant_name("30b-guanaco-vicuna-generations-topp0.9-temp0.7") == "guanaco-33b"
    assert contestant_name("65b-unnatural-instructions-vicuna-generations-topp0.9-temp0.7") == (
        "unnatural-instructions-65b"
    )
    assert contestant_name("13-self-instruct-vicuna-generations-topp0.9-temp0.7-secondround") == (
        "self-instruct-13b-secondround"
    )
    assert contestant_name("answer_gpt35") == contestant_name("gpt-3.5-oa-generations") == "gpt-3.5-turbo"
    assert contestant_name("answer-gpt4") == contestant_name("gpt4") == "gpt-4"
    assert (
        contestant_name("answer-vicuna-13b") == contestant_name("vicuna-13b-oa-generations") == "vicuna-13b"
    )
    with pytest.raises(ValueError):
        contestant_name("mystery-model")


def test_contestants_are_release_entries(imported) -> None:
    store, _report, _frame = imported
    with store.session() as s:
        rows = {c.name: c for c in s.scalars(select(Contestant))}
    for name in ("guanaco-7b", "guanaco-13b", "guanaco-33b", "guanaco-65b", "gpt-4", "gpt-3.5-turbo", "bard",
                 "vicuna-13b", "alpaca-13b", "flan-33b", "hh-rlhf-7b", "unnatural-instructions-65b",
                 "self-instruct-13b", "self-instruct-13b-secondround", "huggingchat-33b"):  # fmt: skip
        assert rows[name].kind == "release" and rows[name].meta["source"]
    assert len(rows) == 38


def test_derived_answer_ids_match_the_judgment_files(shared_data: Path) -> None:
    gen = json.loads((shared_data / "qlora-eval/generations/vicuna/13b-guanaco-vicuna-generations-topp0.9-temp0.7.jsonl")
                     .read_text().splitlines()[0])  # fmt: skip
    record = _records(shared_data, "vicuna/pairwise")
    first = next(r for r in record if r["review_id"] == "7WtBcgZGiHe7atrz85Xqic")
    assert derived_answer_id(judged_text(gen)) == shortuuid.uuid(
        gen["generation_truncated"].split("A chat")[0]
    )
    assert derived_answer_id(judged_text(gen)) == first["answer1_id"] == "W5axUx9wFw6NdFtc7dnBk4"


def _judgment(store: Store, review_id: str) -> dict:
    with store.session() as s:
        j = s.scalars(select(Judgment).where(Judgment.external_id == review_id)).one()
        g1, g2 = s.get(Generation, j.generation1_id), s.get(Generation, j.generation2_id)
        names = [s.get(Contestant, g.contestant_id).name for g in (g1, g2)]
        prompt = s.get(Prompt, j.prompt_id)
        return {"models": names, "ids": [g1.external_id, g2.external_id], "verdict": j.verdict,
                "scores": [j.score1, j.score2], "status": j.status, "raw": j.raw, "key": prompt.key,
                "judge": j.judge, "template": j.template_id, "texts": [g1.text, g2.text],
                "missing": [g1.meta.get("text_missing"), g2.meta.get("text_missing")]}  # fmt: skip


def test_pairwise_slots_follow_answer_ids(imported, shared_data: Path) -> None:
    store = imported[0]
    j = _judgment(store, "7WtBcgZGiHe7atrz85Xqic")
    gpt4 = json.loads(
        (shared_data / "qlora-eval/generations/vicuna/answer_gpt4.jsonl").read_text().splitlines()[0]
    )
    assert j["models"] == ["guanaco-13b", "gpt-4"] and j["key"] == "1"
    assert j["ids"] == ["W5axUx9wFw6NdFtc7dnBk4", gpt4["answer_id"]]
    assert j["verdict"] == "2" and j["judge"] == "gpt-4" and j["template"] == "qlora-vicuna-threeclass"
    assert j["raw"].startswith("Both Assistant 1 and Assistant 2")


def test_relative_files_named_in_the_opposite_order_follow_the_records(imported, shared_data: Path) -> None:
    store, report, _frame = imported
    gpt35 = json.loads(
        (shared_data / "qlora-eval/generations/vicuna/answer_gpt35.jsonl").read_text().splitlines()[0]
    )
    j = _judgment(store, "de8MsJ7e5qgXCs57EzhyrE")  # file 13b-alpaca-...-vs-gpt-3.5, line 1
    assert gpt35["question_id"] == 1 and j["ids"][0] == gpt35["answer_id"] == "BZGowHM7L3RvtWRktKZjLT"
    assert j["models"] == ["gpt-3.5-turbo", "alpaca-13b"]
    assert j["scores"] == [9.0, 6.0] and j["verdict"] == "1"
    assert any("13b-alpaca" in n and "opposite slots" in n for n in report.notes)
    assert report.inconsistencies == 64 * 80 + 160


def test_records_without_matching_answers_are_skipped_and_reported(imported) -> None:
    store, report, frame = imported
    for name in (FLAN_FILE, HH_FILE):
        assert any(
            name in n and "80 record(s)" in n and "matches no released answer" in n for n in report.notes
        )
    with store.session() as s:
        sources = {m["source"] for (m,) in s.execute(select(Judgment.meta))}
    assert f"{RATINGS}/{FLAN_FILE}" not in sources and f"{RATINGS}/{HH_FILE}" not in sources


def test_oa_judgments_link_to_placeholder_generations(imported, shared_data: Path) -> None:
    store, _report, frame = imported
    record = json.loads(
        (shared_data / RATINGS / "oa/13b-guanaco-oa-generations-topp0.9-temp0.7-vs-gpt-4-oa-generations-gpt-4-reviewer-threeclass.jsonl")
        .read_text().splitlines()[0]
    )  # fmt: skip
    j = _judgment(store, record["review_id"])
    assert j["models"] == ["guanaco-13b", "gpt-4"] and j["key"] == record["message_id"]
    assert j["ids"] == [record["answer1_id"], record["answer2_id"]]
    assert j["texts"] == ["", ""] and j["missing"] == [True, True]
    oa = frame[frame.benchmark == "oa"]
    assert set(oa.model_1) == {"guanaco-7b", "guanaco-13b", "guanaco-33b", "guanaco-65b", "gpt-4",
                               "gpt-3.5-turbo", "vicuna-13b"}  # fmt: skip
    with store.session() as s:
        missing = sum(bool(meta.get("text_missing")) for (meta,) in s.execute(select(Generation.meta)))
    assert missing == 7 * 953 + 80  # OA answers, and HuggingChat's Vicuna answers, were not released


def test_reimport_adds_nothing(imported, shared_data: Path) -> None:
    store, first, _frame = imported
    again = import_qlora_release(store, shared_data, progress=False)  # the mirror root works too
    assert again.imported == 0 and again.already_present == first.imported
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == first.new_rows["judgments"]


def test_strict_import_refuses_and_stores_nothing(shared_data: Path, store: Store) -> None:
    with pytest.raises(BenchmarkFileError, match=r"13b-flan.*line 1, field 'answer1_id/answer2_id'"):
        import_qlora_release(store, shared_data / "qlora-eval", strict=True, progress=False)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Prompt)) == 0


# ---------------------------------------------------------------- a small hand-made release


def _write(path: Path, rows: list[dict], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def _mini_release(root: Path) -> Path:
    """Two questions, guanaco-7b (ids derived from text) and gpt-4 (ids given), one pairwise file
    whose name has the models the wrong way round, and one with an answer id nobody wrote."""
    template = {
        "prompt_id": 1,
        "system_prompt": "s",
        "prompt_template": "{question}",
        "defaults": {"prompt": "p"},
    }
    reviewer = {"reviewer_id": "r", "prompt_id": 1, "metadata": {}, "category": "general"}
    for name in ("vicuna_prompt_threeclass", "vicuna_prompt_relative", "oa_prompt_threeclass"):
        _write(root / f"prompts/{name}.jsonl", [template])
    _write(root / "prompts/reviewer.jsonl", [reviewer])
    _write(root / "prompts/oa_reviewer.jsonl", [reviewer])
    _write(root / "prompts/vicuna_questions.jsonl", [{"question_id": q, "text": f"Q{q}?", "category": "generic"}
                                                     for q in (1, 2)])  # fmt: skip
    _write(
        root / "prompts/oa_questions.jsonl", [{"message_id": "m1", "input": "### Human: Hi ### Assistant:"}]
    )
    guanaco = [{"question_id": q, "text": f"Q{q}?", "generation": f"Answer {q}. A chat between a curious human and an artificial intelligence", "generation_truncated": f"Answer {q}. "}
               for q in (1, 2)]  # fmt: skip
    _write(root / "generations/vicuna/7b-guanaco-vicuna-generations-topp0.9-temp0.7.jsonl", guanaco)
    _write(root / "generations/vicuna/answer_gpt4.jsonl",
           [{"answer_id": f"gpt4-{q}", "question_id": q, "text": f"GPT-4 answer {q}"} for q in (1, 2)])  # fmt: skip
    gid = {q: shortuuid.uuid(f"Answer {q}. ") for q in (1, 2)}
    pairwise = root / "ratings-gpt4/vicuna/pairwise"
    _write(pairwise / "answer-gpt4-vs-7b-guanaco-vicuna-generations-topp0.9-temp0.7-gpt-4-reviewer-threeclass.jsonl", [
        {"review_id": "swapped", "question_id": 1, "answer1_id": gid[1], "answer2_id": "gpt4-1", "reviewer_id": 1,
         "text": "...\n1", "score": 1},
    ])  # fmt: skip
    _write(pairwise / "7b-guanaco-vicuna-generations-topp0.9-temp0.7-vs-answer-gpt4-gpt-4-reviewer-threeclass.jsonl", [
        {"review_id": "ok", "question_id": 2, "answer1_id": gid[2], "answer2_id": "gpt4-2", "reviewer_id": 1,
         "text": "...\n3", "score": 3},
        {"review_id": "unknown", "question_id": 1, "answer1_id": gid[1], "answer2_id": "nobody-wrote-this",
         "reviewer_id": 1, "text": "...\n2", "score": 2},
    ])  # fmt: skip
    return root


def test_mini_release_follows_ids_and_skips_an_unknown_answer(tmp_path: Path, store: Store) -> None:
    report = import_qlora_release(store, _mini_release(tmp_path / "rel"), progress=False)
    assert (report.new_rows["judgments"], report.skipped, report.inconsistencies) == (2, 1, 2)
    assert _judgment(store, "swapped")["models"] == ["guanaco-7b", "gpt-4"]
    assert _judgment(store, "ok")["verdict"] == "tie"
    with store.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(Judgment).where(Judgment.external_id == "unknown")) == 0
        )


def test_unknown_answer_in_strict_mode_names_file_line_field(tmp_path: Path, store: Store) -> None:
    with pytest.raises(BenchmarkFileError, match=r"7b-guanaco.*line 2, field 'answer1_id/answer2_id'"):
        import_qlora_release(store, _mini_release(tmp_path / "rel"), strict=True, progress=False)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Generation)) == 0


def test_truncated_judgment_file_is_refused_and_nothing_stored(tmp_path: Path, store: Store) -> None:
    root = _mini_release(tmp_path / "rel")
    broken = (
        root
        / "ratings-gpt4/vicuna/pairwise/7b-guanaco-vicuna-generations-topp0.9-temp0.7-vs-answer-gpt4-gpt-4-reviewer-threeclass.jsonl"
    )
    broken.write_text(broken.read_text()[:-40])
    with pytest.raises(BenchmarkFileError, match=r"line 2: not valid JSON \(the file looks truncated\)"):
        import_qlora_release(store, root, progress=False)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Prompt)) == 0


def test_missing_field_in_a_judgment_names_it(tmp_path: Path, store: Store) -> None:
    root = _mini_release(tmp_path / "rel")
    path = next((root / "ratings-gpt4/vicuna/pairwise").glob("answer-gpt4*.jsonl"))
    record = json.loads(path.read_text())
    del record["answer2_id"]
    _write(path, [record])
    with pytest.raises(BenchmarkFileError, match=r"line 1, field 'answer2_id': missing"):
        import_qlora_release(store, root, progress=False)


def test_cli_import_end_to_end(tmp_path: Path, db_url: str, capsys) -> None:
    root = _mini_release(tmp_path / "rel")
    assert main(["import", "qlora-release", str(root), "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "records read" in out and "inconsistencies" in out and "matches no released answer" in out
    assert main(["import", "qlora-release", str(root), "--db", db_url]) == 0
    again = capsys.readouterr().out
    assert re.search(r"imported\s+0 ", again) and re.search(
        r"already present\s+6\n", again
    )  # 4 answers, 2 verdicts
    assert main(["import", "qlora-release", str(root), "--db", db_url, "--strict"]) == 2
    assert "nothing was imported" in capsys.readouterr().err
    assert main(["import", "qlora-release", str(tmp_path / "nowhere"), "--db", db_url]) == 2


def test_oa_placeholder_ids_follow_the_majority_of_files(tmp_path: Path, store: Store) -> None:
    """OA answers were not released: a model's answer id is the one most files agree on."""
    root = _mini_release(tmp_path / "rel")
    oa = root / "ratings-gpt4/oa"
    g7, g4, v13 = (
        "7b-guanaco-oa-generations-topp0.9-temp0.7",
        "gpt-4-oa-generations",
        "vicuna-13b-oa-generations",
    )
    for (first, second), ids in {(g7, g4): ("id-g7", "id-g4"), (g4, g7): ("id-g4", "id-g7"),
                                 (g7, v13): ("id-other", "id-v13")}.items():  # fmt: skip
        record = {"review_id": f"{first[:5]}-{second[:5]}", "message_id": "m1", "answer1_id": ids[0],
                  "answer2_id": ids[1], "reviewer_id": 1, "text": "...\n1", "score": 1}  # fmt: skip
        _write(oa / f"{first}-vs-{second}-gpt-4-reviewer-threeclass.jsonl", [record])
    report = import_qlora_release(store, root, progress=False)
    assert any("vicuna-13b-oa" in n and "other files contradict" in n for n in report.notes)
    with store.session() as s:
        frame = judgments_frame(s, benchmark="oa")
        ids = {g.external_id for g in s.scalars(select(Generation).where(Generation.text == ""))}
    assert sorted(zip(frame.model_1, frame.model_2, strict=True)) == [
        ("gpt-4", "guanaco-7b"),
        ("guanaco-7b", "gpt-4"),
    ]
    assert ids == {"id-g7", "id-g4"}
