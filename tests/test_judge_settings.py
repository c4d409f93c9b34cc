"""Judging defaults follow the template's source and are recorded with every judgment."""

from __future__ import annotations

from arena.cli import main
from arena.store import Judgment, Prompt, Run, Store
from arena.tournament.plan import question_text
from judges.templates import load_template
from tests.judge_helpers import MODELS, fill_store, threeclass_judge
from tests.scripted_server import scripted_server_fixture  # noqa: F401


def test_sources_set_the_defaults() -> None:
    vicuna, oa = load_template("qlora-vicuna"), load_template("qlora-oa")
    assert (vicuna.settings.temperature, vicuna.settings.max_tokens) == (0.2, 1024)  # QLoRA's reviewer.jsonl
    assert (vicuna.settings.question_form, oa.settings.question_form) == ("bare", "qlora")
    pair = load_template("mt-bench-pair")
    assert (pair.settings.temperature, pair.settings.max_tokens) == (0.0, 2048)  # FastChat's common.py


def test_oa_prompts_reach_the_judge_in_the_released_form() -> None:
    single = Prompt(turns=["Write a haiku."], context=[])
    assert question_text(single, form="qlora") == "### Human: Write a haiku. ### Assistant:"
    assert question_text(single) == "Write a haiku."
    threaded = Prompt(turns=["And shorter?"], context=[{"role": "user", "content": "Hi"},
                                                       {"role": "assistant", "content": "Hello"}])  # fmt: skip
    assert (
        question_text(threaded) == "### Human: Hi ### Assistant: Hello ### Human: And shorter? ### Assistant:"
    )


def test_qlora_template_judges_at_its_temperature_and_records_it(
    store: Store, db_url: str, scripted_server
) -> None:
    fill_store(store, prompts=1)
    scripted_server.reply = threeclass_judge
    args = ["judge", "--db", db_url, "--benchmark", "vicuna", "--models", ",".join(MODELS),
            "--base-url", scripted_server.url, "--concurrency", "2"]  # fmt: skip
    assert main(args) == 0
    assert {(r["body"]["temperature"], r["body"]["max_tokens"]) for r in scripted_server.requests} == {
        (0.2, 1024)
    }
    with store.session() as session:
        meta = session.query(Judgment).first().meta
        run_settings = session.query(Run).filter_by(kind="judge").one().config["judge_settings"]
    assert run_settings["temperature"] == 0.2 and run_settings["max_tokens"] == 1024
    assert (meta["temperature"], meta["max_tokens"], meta["turn"]) == (0.2, 1024, 1)
    assert "reviewer.jsonl" in meta["defaults_from"] and meta["prompt_name"] == "general"
    assert main([*args, "--judge-name", "cold", "--temperature", "0", "--max-tokens", "64"]) == 0
    assert {r["body"]["temperature"] for r in scripted_server.requests[6:]} == {0.0}
    assert {r["body"]["max_tokens"] for r in scripted_server.requests[6:]} == {64}
