"""The shared OpenAI-compatible client against the scripted server: real HTTP, real openai package."""

from __future__ import annotations

import asyncio
import time

import pytest

from judges.client import ChatClient, ChatError, ClientConfig, api_key, chat, is_local_url
from tests.scripted_server import (  # noqa: F401
    ScriptedServer,
    completion_body,
    drop,
    hang,
    malformed,
    scripted_server_fixture,
    status,
    trickle,
)

MESSAGES = [{"role": "user", "content": "two words"}]


def config(server: ScriptedServer, **kw) -> ClientConfig:
    return ClientConfig(model="judge", base_url=server.url, backoff_base_s=0.01, **{"timeout_s": 2.0, **kw})


def test_reply_usage_and_parameters_passed_through(scripted_server: ScriptedServer) -> None:
    scripted_server.reply = lambda body: "echo " + body["messages"][-1]["content"]
    result = asyncio.run(chat(config(scripted_server), MESSAGES, temperature=0.3, max_tokens=9, seed=7))
    assert (result.text, result.prompt_tokens, result.completion_tokens, result.attempts) == (
        "echo two words",
        2,
        3,
        1,
    )
    body = scripted_server.requests[0]["body"]
    assert (body["temperature"], body["max_tokens"], body["seed"], body["model"]) == (0.3, 9, 7, "judge")
    assert scripted_server.requests[0]["headers"]["authorization"] == "Bearer EMPTY"


@pytest.mark.parametrize(
    "action",
    [status(500), status(503), hang(3.0), drop(), malformed()],
    ids=["500", "503", "timeout", "drop", "malformed"],
)
def test_transient_failures_are_retried(scripted_server: ScriptedServer, action) -> None:
    scripted_server.push(action)
    result = asyncio.run(chat(config(scripted_server, timeout_s=1.5), MESSAGES))
    assert result.text == "OK" and result.attempts == 2 and len(scripted_server.requests) == 2


def test_429_waits_at_least_retry_after(scripted_server: ScriptedServer) -> None:
    scripted_server.push(status(429, retry_after=0.4))
    start = time.perf_counter()
    result = asyncio.run(chat(config(scripted_server), MESSAGES))
    first, second = (r["time"] for r in scripted_server.requests)
    assert result.attempts == 2 and second - first >= 0.4 and time.perf_counter() - start >= 0.4


def test_gives_up_after_max_attempts_and_on_client_errors(scripted_server: ScriptedServer) -> None:
    scripted_server.push(*[status(500)] * 3)
    with pytest.raises(ChatError, match="after 3 attempt") as err:
        asyncio.run(chat(config(scripted_server, max_attempts=3), MESSAGES))
    assert err.value.retryable and len(scripted_server.requests) == 3
    scripted_server.push(status(400))
    with pytest.raises(ChatError, match="400") as err:
        asyncio.run(chat(config(scripted_server), MESSAGES))
    assert not err.value.retryable and len(scripted_server.requests) == 4


@pytest.mark.parametrize("usage", [{"prompt_tokens": -40, "completion_tokens": "9"}, None, [3, 4]])
def test_usage_that_is_not_a_count_is_left_out(scripted_server: ScriptedServer, usage) -> None:
    """A reply's token counts must be non-negative integers: a hostile server cannot lower what a
    call is charged (a judge then charges the call's bound)."""

    def reply(handler, body) -> None:
        handler.send_json(200, {**completion_body(body, "OK"), "usage": usage})

    scripted_server.push(reply)
    result = asyncio.run(chat(config(scripted_server), MESSAGES))
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("OK", None, None)


def test_the_servers_x_should_retry_is_obeyed(scripted_server: ScriptedServer) -> None:
    """As the openai SDK does: a 500 the server marks final is not retried, a 400 it marks
    retryable is."""
    scripted_server.push(status(500, x_should_retry="false"))
    with pytest.raises(ChatError, match="after 1 attempt") as err:
        asyncio.run(chat(config(scripted_server), MESSAGES))
    assert not err.value.retryable and len(scripted_server.requests) == 1
    scripted_server.push(status(400, x_should_retry="true"))
    assert asyncio.run(chat(config(scripted_server), MESSAGES)).attempts == 2


def test_concurrency_limit_holds(scripted_server: ScriptedServer) -> None:
    scripted_server.latency = 0.2

    async def many() -> None:
        async with ChatClient(config(scripted_server, concurrency=3)) as client:
            await asyncio.gather(*(client.chat(MESSAGES) for _ in range(9)))

    asyncio.run(many())
    times = sorted(r["time"] for r in scripted_server.requests)
    # nine calls, three at a time, 0.2 s each: three waves, so the last starts >= 0.4 s after the first
    assert len(times) == 9 and times[-1] - times[0] >= 0.35


def test_missing_key_for_a_remote_endpoint_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(ChatError, match="NO_SUCH_KEY"):
        ChatClient(ClientConfig(model="gpt-4", api_key_env="NO_SUCH_KEY"))


@pytest.mark.parametrize("value", ["soon", "Mon, 99 Foo 2024 25:00:00 GMT", "", "-"])
def test_malformed_retry_after_counts_as_absent(scripted_server: ScriptedServer, value: str) -> None:
    scripted_server.push(status(429, retry_after=value))
    result = asyncio.run(chat(config(scripted_server), MESSAGES))
    assert result.text == "OK" and result.attempts == 2


def test_a_server_trickling_bytes_cannot_hold_a_call(scripted_server: ScriptedServer) -> None:
    """Each byte arrives long before the per-read timeout, but the whole reply takes about 25 s:
    the attempt's deadline ends it, and the client hangs up."""
    scripted_server.push(trickle(0.1), trickle(0.1))
    with pytest.raises(ChatError, match=r"after 2 attempt.*no complete reply within 1s"):
        asyncio.run(chat(config(scripted_server, timeout_s=1.0, max_attempts=2), MESSAGES))
    deadline = time.monotonic() + 10
    while scripted_server.hung_up < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scripted_server.hung_up == 2 and scripted_server.answered == 0


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://localhost:8000/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://127.0.0.2/v1", True),
        ("https://localhost.evil.example/v1", False),
        ("https://evil.example/127.0.0.1/v1", False),
        ("https://127.0.0.1.evil.example/v1", False),
        ("https://user:localhost@evil.example/v1", False),
        ("https://api.openai.com/v1", False),
        (None, False),
    ],
)
def test_local_endpoint_is_decided_on_the_parsed_host(monkeypatch, url: str | None, local: bool) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    assert is_local_url(url) is local
    cfg = ClientConfig(model="judge", base_url=url, api_key_env="NO_SUCH_KEY")
    if local:
        assert api_key(cfg) == "EMPTY"
    else:
        with pytest.raises(ChatError, match="NO_SUCH_KEY"):
            api_key(cfg)
