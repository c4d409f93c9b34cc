"""The judge itself over real HTTP: repair re-ask, score templates, single grading, fatal errors."""

from __future__ import annotations

import asyncio
import socket

import pytest

from arena.cli import main
from arena.query.judgments import read_judgments
from arena.store import Store
from judges.client import ChatClient, ClientConfig
from judges.judge import Case, FatalJudgeError, Judge, JudgeConfig, Outcome, Price, load_prices, price_for
from judges.templates import load_template
from tests.judge_helpers import MODELS, fill_store
from tests.scripted_server import ScriptedServer, scripted_server_fixture, status, text  # noqa: F401

CASE = Case("What is 2+2?", "It is 4.", "It is 5.", category="math")


def judge_once(server: ScriptedServer, template: str, **kw) -> Outcome:
    client_cfg = ClientConfig(model="judge", base_url=server.url, backoff_base_s=0.01)
    cfg = JudgeConfig(client=client_cfg, template=load_template(template), name="judge", **kw)

    async def run() -> Outcome:
        async with ChatClient(client_cfg) as client:
            return await Judge(cfg, client).judge(CASE)

    return asyncio.run(run())


def test_repair_asks_once_more_with_the_first_reply(scripted_server: ScriptedServer) -> None:
    scripted_server.push(text("Assistant 1 is right, Assistant 2 is wrong."), text("1"))
    outcome = judge_once(scripted_server, "qlora-vicuna", repair=True)
    assert (outcome.status, outcome.verdict, outcome.meta["repaired"]) == ("ok", "1", True)
    assert "Assistant 2 is wrong." in outcome.raw and outcome.raw.endswith("[repair]\n1")
    follow_up = scripted_server.requests[1]["body"]["messages"]
    assert follow_up[-2] == {"role": "assistant", "content": "Assistant 1 is right, Assistant 2 is wrong."}
    assert "1, 2 or 3" in follow_up[-1]["content"]
    assert outcome.completion_tokens == 8 + 1  # both calls counted
    scripted_server.push(text("no verdict"), text("still none"))
    assert judge_once(scripted_server, "qlora-vicuna", repair=True).status == "unparsed"
    assert len(scripted_server.requests) == 4  # one repair each, never more


def test_relative_scores_and_single_grading(scripted_server: ScriptedServer) -> None:
    scripted_server.reply = "9 3\nAssistant 1 is correct."
    outcome = judge_once(scripted_server, "relative")
    assert (outcome.score1, outcome.score2, outcome.verdict) == (9.0, 3.0, "1")
    assert "mathematical" in scripted_server.requests[0]["body"]["messages"][1]["content"]  # math variant
    scripted_server.push(text("Fine. Rating: [[4]]"), text("Wrong. Rating: [[2]]"))
    outcome = judge_once(scripted_server, "mt-bench-single")
    assert (outcome.score1, outcome.score2, outcome.verdict, outcome.status) == (4.0, 2.0, "1", "ok")
    graded = [r["body"]["messages"][1]["content"] for r in scripted_server.requests[1:]]
    assert "It is 4." in graded[0] and "It is 5." not in graded[0] and "It is 5." in graded[1]


def test_prices_are_data_and_overridable(tmp_path, monkeypatch) -> None:
    prices = load_prices()
    assert price_for("gpt-4-0613", prices) == prices["gpt-4"] and price_for("llama", prices) is None
    assert price_for("gpt-4o-mini-2024", prices) == prices["gpt-4o-mini"]
    own = tmp_path / "p.json"
    own.write_text('{"llama": {"prompt": 1, "completion": 2}}')
    monkeypatch.setenv("GUANACO_JUDGE_COSTS", str(own))
    assert load_prices()["llama"] == Price(1.0, 2.0)
    own.write_text('{"llama": {"prompt": 1}}')
    with pytest.raises(ValueError, match="p.json"):
        load_prices()


def test_refused_key_stops_the_run_and_stores_nothing(
    store: Store, db_url: str, scripted_server, capsys
) -> None:
    fill_store(store, prompts=2)
    scripted_server.push(*[status(401, message="bad key")] * 20)
    args = ["judge", "--db", db_url, "--benchmark", "vicuna", "--models", ",".join(MODELS),
            "--base-url", scripted_server.url, "--concurrency", "2"]  # fmt: skip
    assert main(args) == 2
    assert "refused the call" in capsys.readouterr().err
    assert len(read_judgments(store)) == 0 and len(scripted_server.requests) <= 2


def test_an_unreachable_endpoint_stops_the_run_after_its_retries() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client_cfg = ClientConfig(model="judge", base_url=f"http://127.0.0.1:{port}/v1", max_attempts=2,
                              backoff_base_s=0.01)  # fmt: skip
    cfg = JudgeConfig(client=client_cfg, template=load_template("qlora-vicuna"), name="judge")

    async def run() -> Outcome:
        async with ChatClient(client_cfg) as client:
            return await Judge(cfg, client).judge(CASE)

    with pytest.raises(FatalJudgeError, match="APIConnectionError"):
        asyncio.run(run())


def test_errors_are_stored_visibly_then_replaced_by_a_rerun(store: Store, scripted_server) -> None:
    from arena.tournament.plan import done_keys, load_entries, missing, plan_matches
    from arena.tournament.plan import select_pairs as pairs_of
    from arena.tournament.runner import Limits, judge_matches, once
    from tests.judge_helpers import threeclass_judge

    fill_store(store, prompts=1)
    matches = plan_matches(load_entries(store, "vicuna", MODELS), pairs_of(MODELS, "all"))
    client_cfg = ClientConfig(model="judge", base_url=scripted_server.url, max_attempts=1)
    cfg = JudgeConfig(client=client_cfg, template=load_template("qlora-vicuna"), name="judge")
    scripted_server.reply = threeclass_judge

    def run() -> None:
        todo = missing(matches, done_keys(store, cfg.name, cfg.template.hash))

        async def go() -> None:
            async with ChatClient(client_cfg) as client:
                await judge_matches(store, Judge(cfg, client), once(todo), limits=Limits(), concurrency=1)

        asyncio.run(go())

    scripted_server.push(status(500), status(500))
    run()
    frame = read_judgments(store)
    assert len(frame) == 6 and (frame.status == "error").sum() == 2
    run()  # only the two errors are asked again, and their rows are replaced in place
    after = read_judgments(store)
    assert len(scripted_server.requests) == 8 and (after.status == "ok").all()
    assert list(after.judgment_id) == list(frame.judgment_id)


TRICKY = [
    "Résumé naïve café — 東京の天気は？ Привет, мир! 🤖🤖🤖",
    "def f(x):\n\treturn {k: v for k, v in zip(x[::2], x[1::2])}  # 0x1F, λ→∞",
    "aaaa " * 50,
]


@pytest.mark.parametrize("text", TRICKY, ids=["multilingual", "code", "english"])
def test_prompt_tokens_are_never_underestimated(text: str) -> None:
    """A non-OpenAI judge's prompt is bounded by its UTF-8 bytes: never fewer tokens than a real
    byte-level BPE tokenizer makes (the old characters/4 estimate undercounted every one of these)."""
    from tokenizers import Tokenizer

    from foundations.smollm2 import ensure_smollm2
    from judges.tokens import PER_MESSAGE, REPLY_PRIMING, prompt_tokens

    tokenizer = Tokenizer.from_file(str(ensure_smollm2() / "tokenizer.json"))
    real = len(tokenizer.encode(text, add_special_tokens=False).ids)
    bound = prompt_tokens("smollm2-judge", [{"role": "user", "content": text}])
    assert bound - PER_MESSAGE - REPLY_PRIMING >= real > len(text) // 4


def test_openai_models_are_counted_with_tiktoken_when_its_encoding_loads() -> None:
    """Exact with the model's own encoding; offline without tiktoken's cached BPE file, the same
    byte bound as any other model (both are checked, whichever this machine has)."""
    import tiktoken

    from judges.tokens import PER_MESSAGE, REPLY_PRIMING, exact_for, prompt_tokens

    messages = [{"role": "system", "content": "You judge."}, {"role": "user", "content": TRICKY[0]}]
    overhead = PER_MESSAGE * 2 + REPLY_PRIMING
    if exact_for("gpt-4-0613"):
        encoding = tiktoken.encoding_for_model("gpt-4-0613")
        expected = sum(len(encoding.encode(m["content"])) for m in messages) + overhead
    else:
        expected = sum(len(m["content"].encode()) for m in messages) + overhead
    assert prompt_tokens("gpt-4-0613", messages) == expected
    assert not exact_for("/models/smollm2")  # not an OpenAI model: never asks tiktoken


def test_failed_attempts_are_charged_at_their_estimate(scripted_server: ScriptedServer) -> None:
    price = Price(prompt=0.0, completion=1.0)  # $0.001 per completion token: 8 tokens bound $0.008
    scripted_server.push(status(500), status(503))
    scripted_server.reply = "Assistant 1 wins.\n\n1"  # 4 words: $0.004
    outcome = judge_once(scripted_server, "qlora-vicuna", price=price, max_tokens=8)
    assert outcome.meta["failed_attempts"] == 2
    assert outcome.cost_usd == pytest.approx(0.004 + 2 * 0.008)
    scripted_server.push(*[status(500)] * 6)  # every attempt fails: all six are charged
    failed = judge_once(scripted_server, "qlora-vicuna", price=price, max_tokens=8)
    assert failed.status == "error" and failed.cost_usd == pytest.approx(6 * 0.008)
