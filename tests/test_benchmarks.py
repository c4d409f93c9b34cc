"""Benchmarks: the registry, fetch with checksums, parsing into prompts, refusing bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from arena import benchmarks
from arena.benchmarks import load_benchmark, split_oa_input
from arena.cli import main
from arena.store import Prompt
from foundations import sources
from foundations.sources import BenchmarkFileError, ChecksumError

VICUNA_KEY = "fastchat/vicuna_bench/question.jsonl"


@pytest.mark.parametrize(("name", "count", "turns"), [("vicuna", 80, 1), ("oa", 953, 1), ("mt-bench", 80, 2)])
def test_benchmarks_load_from_mirror(shared_data: Path, name: str, count: int, turns: int) -> None:
    rows = load_benchmark(name, shared_data)
    assert len(rows) == count
    assert {len(r["turns"]) for r in rows} == {turns}
    assert len({r["key"] for r in rows}) == count
    digest = sources.source_file(sources.registry()["benchmarks"][name]["questions"]).sha256
    assert {r["source_sha256"] for r in rows} == {digest}
    assert all(r["benchmark"] == name for r in rows)


def test_references_come_from_fastchat_gpt4_answers(shared_data: Path) -> None:
    refs = {}
    for line in (shared_data / "fastchat/mt_bench/reference_answer/gpt-4.jsonl").read_text().splitlines():
        rec = json.loads(line)
        refs[str(rec["question_id"])] = rec["choices"][0]["turns"]
    rows = {r["key"]: r for r in load_benchmark("mt-bench", shared_data)}
    assert refs and all(rows[key]["reference"] == turns for key, turns in refs.items())
    vicuna = load_benchmark("vicuna", shared_data)
    assert sum(r["reference"] is not None for r in vicuna) == 10


def test_oa_keeps_earlier_turns_as_context(shared_data: Path) -> None:
    rows = {r["key"]: r for r in load_benchmark("oa", shared_data)}
    berlin = rows["b26e58d9-770a-443f-8fc4-822db72d5c9b"]
    assert berlin["turns"] == ["how many people lived in that street"]
    assert [t["role"] for t in berlin["context"]] == ["user", "assistant", "user", "assistant"]
    assert berlin["context"][0]["content"] == "Who made Berlin"
    assert berlin["reference"] and berlin["reference"][0].strip()
    assert berlin["meta"]["lang"] == "en"
    assert sum(not r["context"] for r in rows.values()) == 517


def test_a_single_questions_file_in_either_vicuna_format(shared_data: Path) -> None:
    qlora = load_benchmark("vicuna", shared_data / "qlora-eval/prompts/vicuna_questions.jsonl")
    fastchat = load_benchmark("vicuna", shared_data / VICUNA_KEY)
    assert [(r["key"], r["turns"]) for r in qlora] == [(r["key"], r["turns"]) for r in fastchat]
    assert len(qlora) == 80 and qlora[0]["source_sha256"] != fastchat[0]["source_sha256"]


def test_split_oa_input() -> None:
    text = "### Human: Hi ### Assistant: Hello!\n\nHow can I help? ### Human: Tell a joke ### Assistant:"
    assert split_oa_input(text) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!\n\nHow can I help?"},
        {"role": "user", "content": "Tell a joke"},
    ]
    with pytest.raises(ValueError, match="before the first"):
        split_oa_input("hello ### Human: x ### Assistant:")


def test_fetch_from_mirror_fills_cache_then_loads_without_source(shared_data: Path, store) -> None:
    assert main(["data", "fetch", "vicuna", "oa", "mt-bench", "--from", str(shared_data)]) == 0
    assert sources.cache_path(VICUNA_KEY).is_file()
    assert len(load_benchmark("mt-bench")) == 80
    assert benchmarks.ensure_prompts(store, "vicuna") == 80
    assert benchmarks.ensure_prompts(store, "vicuna") == 0
    assert benchmarks.ensure_prompts(store, "oa") == 953
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Prompt)) == 80 + 953


def test_mirror_from_environment(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sources.MIRROR_ENV, str(shared_data))
    monkeypatch.setenv("GUANACO_CACHE", str(tmp_path / "cache"))
    assert len(load_benchmark("oa")) == 953
    assert not sources.cache_path(VICUNA_KEY).exists()
    sources.fetch("vicuna")  # no network needed: the mirror is the default source
    assert sources.sha256_file(sources.cache_path(VICUNA_KEY)) == sources.source_file(VICUNA_KEY).sha256


def test_missing_cache_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUANACO_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv(sources.MIRROR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="guanaco data fetch"):
        load_benchmark("vicuna")


def _tampered_mirror(shared_data: Path, tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    target = mirror / VICUNA_KEY
    target.parent.mkdir(parents=True)
    text = (shared_data / VICUNA_KEY).read_text().replace("time management", "time-management", 1)
    target.write_text(text)
    return mirror


def test_fetch_refuses_a_wrong_checksum(shared_data: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GUANACO_CACHE", str(tmp_path / "cache"))
    mirror = _tampered_mirror(shared_data, tmp_path)
    with pytest.raises(ChecksumError, match="question.jsonl.*does not match the pinned"):
        sources.fetch("vicuna", mirror)
    assert not sources.cache_path(VICUNA_KEY).exists()
    assert not list(sources.cache_path(VICUNA_KEY).parent.glob("*.part"))
    assert main(["data", "fetch", "vicuna", "--from", str(mirror)]) == 2
    assert "does not match" in capsys.readouterr().err


def test_loading_from_a_tampered_mirror_is_refused(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ChecksumError, match=str(tmp_path)):
        load_benchmark("vicuna", _tampered_mirror(shared_data, tmp_path))


def test_truncated_jsonl_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "question.jsonl"
    path.write_text(
        '{"question_id": 1, "category": "x", "turns": ["a"]}\n{"question_id": 2, "category": "x", "tur'
    )
    with pytest.raises(
        BenchmarkFileError, match=r"question\.jsonl, line 2: not valid JSON \(the file looks truncated\)"
    ):
        load_benchmark("mt-bench", path)


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "question.jsonl"
    path.write_text('{"question_id": 1, "turns": ["a"]}\n{"question_id": 2, "category": "x"}\n')
    with pytest.raises(BenchmarkFileError, match=r"line 2, field 'turns': missing") as err:
        load_benchmark("mt-bench", path)
    assert (err.value.path, err.value.line, err.value.field) == (path, 2, "turns")
    oa = tmp_path / "oa.jsonl"
    oa.write_text(json.dumps({"message_id": "m1", "input": "no speakers here"}) + "\n")
    with pytest.raises(BenchmarkFileError, match="field 'input'"):
        load_benchmark("oa", oa)


def test_sample_prompts_are_our_own_vicuna_format_file(store) -> None:
    rows = benchmarks.load_sample_prompts()
    assert len(rows) == 12 and {r["benchmark"] for r in rows} == {"sample"}
    assert len({r["category"] for r in rows}) >= 8
    assert benchmarks.ensure_prompts(store, "sample") == 12
    assert benchmarks.ensure_prompts(store, "sample") == 0


def test_data_list_shows_cache_state(shared_data: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GUANACO_CACHE", str(tmp_path / "cache"))
    assert main(["data", "list"]) == 0
    assert "missing" in capsys.readouterr().out
    assert main(["data", "fetch", "mt-bench", "--from", str(shared_data)]) == 0
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "fastchat/mt_bench/question.jsonl" in out and "cached" in out
    assert main(["data", "fetch", "nonsense"]) == 2
