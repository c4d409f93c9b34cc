"""The openai backend against a scripted OpenAI-compatible server on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from arena.backends import GenerateParams
from arena.cli import main
from arena.generate import generate
from arena.models import add_api
from arena.query.writes import insert_ignore
from arena.store import Generation, Prompt
from tests import scripted_server as scripted
from tests.scripted_server import scripted_server_fixture  # noqa: F401 - the fixture

QUESTIONS = [f"Question number {i}?" for i in range(8)]


@pytest.fixture
def api_store(store, scripted_server, monkeypatch):
    """Eight prompts (one with a second turn) and an API contestant pointing at the scripted server."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rows = [{"benchmark": "t", "key": f"q{i}", "turns": [q, *(["Follow-up?"] if i == 0 else [])]}
            for i, q in enumerate(QUESTIONS)]  # fmt: skip
    with store.session() as session:
        insert_ignore(session, Prompt, rows)
        add_api(session, "api", "scripted-model", base_url=scripted_server.url)
    scripted_server.reply = lambda body: f"Answer to: {body['messages'][-1]['content']} ### Human: run-on"
    return store


FAST = GenerateParams(temperature=0.7, max_new_tokens=32, concurrency=3, batch_size=4)


def test_every_prompt_is_answered_once_despite_429_500_and_a_dropped_connection(api_store, scripted_server,
                                                                                monkeypatch):  # fmt: skip
    monkeypatch.setattr("judges.client.ClientConfig.backoff_base_s", 0.05)
    scripted_server.latency = 0.02
    scripted_server.push(scripted.status(429, retry_after=0.3), scripted.status(500), scripted.drop())
    report = generate(api_store, "t", ["api"], "transformers", FAST)
    assert report.generated.tolist() == [8] and report.failed.tolist() == [0]
    assert report.backend.tolist() == ["openai"]
    with api_store.session() as session:
        gens = session.scalars(select(Generation)).all()
    assert len(gens) == 8
    for g in gens:
        assert g.text.startswith("Answer to: ") and "### Human:" not in g.text and "run-on" in g.raw_text
        raws = g.meta.get("turn_raw_texts", [g.raw_text])
        assert g.prompt_tokens > 0 and g.completion_tokens == sum(scripted.words(r) for r in raws)
        assert g.params == {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 32} and g.backend == "openai"
        assert g.meta["model"]["api_model"] == "scripted-model"
    answered = [t for t in scripted_server.user_texts() if t.startswith("Question")]
    assert sorted(set(answered)) == sorted(QUESTIONS)
    assert {(r["body"]["temperature"], r["body"]["top_p"]) for r in scripted_server.requests} == {(0.7, 0.9)}
    assert sum(g.meta["attempts"][0] > 1 for g in gens) >= 1
    two = next(g for g in gens if len(g.turn_texts) == 2)
    assert two.turn_texts[1] == "Answer to: Follow-up?"
    second_request = next(r["body"]["messages"] for r in scripted_server.requests
                          if r["body"]["messages"][-1]["content"] == "Follow-up?")  # fmt: skip
    assert second_request[1] == {"role": "assistant", "content": two.turn_texts[0]}


def test_a_prompt_that_keeps_failing_is_left_for_the_next_run(api_store, scripted_server, monkeypatch):
    monkeypatch.setattr("judges.client.ClientConfig.max_attempts", 2)
    monkeypatch.setattr("judges.client.ClientConfig.backoff_base_s", 0.01)
    scripted_server.push(scripted.status(400, message="bad request"))
    report = generate(api_store, "t", ["api"], "openai", FAST)
    assert report.failed.tolist() == [1] and report.generated.tolist() == [7]
    again = generate(api_store, "t", ["api"], "openai", FAST)
    assert again.generated.tolist() == [1] and again.skipped.tolist() == [7]
    with api_store.session() as session:
        assert len(session.scalars(select(Generation.id)).all()) == 8


def test_api_keys_come_from_the_environment_and_are_never_stored(db_url, monkeypatch, capsys):
    monkeypatch.setenv("MY_KEY", "sk-very-secret")
    assert main(["models", "add", "g", "--api", "openai", "--model", "gpt-4-0613", "--api-key-env", "MY_KEY",
                 "--db", db_url]) == 0  # fmt: skip
    assert main(["models", "list", "--db", db_url]) == 0
    assert "sk-very-secret" not in capsys.readouterr().out
    from arena.store import Store

    with Store(db_url).session() as session:
        from arena.store import Contestant

        (meta,) = session.scalars(select(Contestant.meta)).all()
    assert meta["api_key_env"] == "MY_KEY" and "sk-" not in repr(meta)
