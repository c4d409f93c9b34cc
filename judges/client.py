"""The one async client for OpenAI-compatible chat endpoints (OpenAI, vLLM, `transformers serve`, ...).

Judges and the generation helper's `openai` backend both call :func:`chat` (or a :class:`ChatClient`)
so that every paid call gets the same treatment: a concurrency limit, a deadline on every attempt
(the whole reply, not each read, so a server that trickles bytes cannot hold a call), retries with
exponential backoff and full jitter on 429/5xx/timeouts/dropped connections/malformed replies that
honour the server's ``Retry-After`` (a malformed one counts as absent), and the token usage the
server reports. The API key is read from the environment and never logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ipaddress
import json
import logging
import os
import random
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from foundations.errors import UserError

log = logging.getLogger(__name__)

LOCAL_NAMES = ("localhost", "localhost.localdomain")


def is_local_url(url: str | None) -> bool:
    """Whether `url` names this machine: its parsed host is a loopback address, `localhost` or the
    unspecified address (never a substring test: `https://localhost.evil.example` is remote)."""
    if not url:
        return False
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to call: one endpoint and model, with its limits.

    `base_url` None means api.openai.com. The key is read from the environment variable named by
    `api_key_env`; local endpoints (127.0.0.1, localhost) work without one. `timeout_s` bounds each
    attempt from request to the reply's last byte."""

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout_s: float = 120.0
    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0


@dataclass(frozen=True)
class ChatResult:
    """One completed call: the reply text and what it cost in tokens and seconds (all attempts)."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float
    attempts: int = 1
    model: str | None = None


class ChatError(Exception):
    """A call that failed for good: not retryable, or still failing after `max_attempts`."""

    def __init__(self, message: str, *, attempts: int, retryable: bool) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.retryable = retryable


class MissingApiKey(ChatError, UserError):
    """No key for a remote endpoint: nothing can be sent, so the user is told what to set."""

    def __init__(self, message: str) -> None:
        super().__init__(message, attempts=0, retryable=False)


class MalformedReply(Exception):
    """The server answered 2xx but the body was not a chat completion."""


class DeadlineExceeded(Exception):
    """An attempt had no complete reply within the client's `timeout_s`."""


def api_key(cfg: ClientConfig) -> str:
    """The key from `cfg.api_key_env`; a placeholder for local servers; a clear error otherwise."""
    key = os.environ.get(cfg.api_key_env)
    if key:
        return key
    if is_local_url(cfg.base_url):
        return "EMPTY"
    raise MissingApiKey(
        f"no API key: set the environment variable {cfg.api_key_env} (or pass --base-url for a local server)"
    )


def retry_after_seconds(error: BaseException) -> float | None:
    """The wait the server asked for (`retry-after-ms`, or `Retry-After` in seconds or as an HTTP
    date); None when absent or unreadable, so a malformed header never fails the call."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    if headers.get("retry-after-ms"):
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 7231 dates are GMT
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - time.time())


def is_retryable(error: BaseException) -> bool:
    """429, 5xx, 408/409, timeouts, dropped connections and malformed replies are worth another try,
    unless the server says otherwise in `x-should-retry`."""
    import openai

    if isinstance(
        error, (openai.APITimeoutError, openai.APIConnectionError, MalformedReply, DeadlineExceeded)
    ):
        return True
    if isinstance(error, openai.APIStatusError):
        told = error.response.headers.get("x-should-retry")  # OpenAI's own say, as the SDK obeys it
        if told in ("true", "false"):
            return told == "true"
        return error.status_code in (408, 409, 429) or error.status_code >= 500
    return False


def backoff_seconds(cfg: ClientConfig, attempt: int, error: BaseException) -> float:
    """Full-jitter exponential backoff, but never shorter than the server's Retry-After."""
    ceiling = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
    wait = random.uniform(0, ceiling)
    asked = retry_after_seconds(error)
    if asked is not None:
        wait = max(wait, min(asked, cfg.backoff_max_s) + random.uniform(0, cfg.backoff_base_s / 10))
    return wait


def read_reply(payload: bytes) -> tuple[str, dict[str, int], str | None]:
    """(text, token usage, served model) of a chat completion body. Anything else is a
    :class:`MalformedReply` (retried); a usage count that is not a non-negative integer is left
    out (the call is then charged at its bound), so a hostile server cannot lower what is counted."""
    try:
        reply = json.loads(payload)
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise MalformedReply(f"not a chat completion ({type(err).__name__}): {payload[:200]!r}") from None
    if not isinstance(content, str):
        raise MalformedReply(f"reply content is {type(content).__name__}, not text")
    reported = reply.get("usage")
    usage = {
        name: count
        for name, count in (reported.items() if isinstance(reported, dict) else ())
        if name in ("prompt_tokens", "completion_tokens") and type(count) is int and count >= 0
    }
    model = reply.get("model")
    return content, usage, model if isinstance(model, str) else None


class ChatClient:
    """An AsyncOpenAI client plus a semaphore: create one per event loop and share it."""

    def __init__(self, cfg: ClientConfig) -> None:
        from openai import AsyncOpenAI

        self.cfg = cfg
        # The SDK's own retry is off (max_retries=0) and :meth:`chat` retries instead, because the
        # SDK's loop (openai/_base_client.py `request`) cannot do what a paid judge call needs:
        # - charge each failed attempt to the budget as it fails and retry only while the call's
        #   reservation still fits: it has no hook between attempts, and it retries timeouts and
        #   dropped connections unconditionally;
        # - bound each attempt to the reply's last byte: its timeouts (httpx's) are per read;
        # - retry a 200 whose body is not a chat completion: it decodes after its loop;
        # - free the concurrency slot while backing off: its sleep is inside the call;
        # - count the attempts of a call that failed, and back off by `backoff_base_s`/`backoff_max_s`
        #   (its 0.5 s doubling to 8 s are module constants).
        # What it does do, the loop here does the same way: 408/409/429/5xx, timeouts and dropped
        # connections are retried, `x-should-retry` is obeyed, Retry-After is honoured in seconds,
        # milliseconds or as an HTTP date and counts as absent when malformed.
        self._client = AsyncOpenAI(
            api_key=api_key(cfg), base_url=cfg.base_url, timeout=cfg.timeout_s, max_retries=0
        )
        self._limit = asyncio.Semaphore(cfg.concurrency)

    async def chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        seed: int | None = None,
        top_p: float | None = None,
        on_failure: Callable[[BaseException], bool] | None = None,
    ) -> ChatResult:
        """One chat completion, retried as :func:`is_retryable` allows; raises :class:`ChatError`.

        `on_failure` hears of every failed attempt (a judge charges it to its budget) and answers
        whether another attempt may be made."""
        optional = {"max_tokens": max_tokens, "seed": seed, "top_p": top_p}
        body = {"model": self.cfg.model, "messages": list(messages), "temperature": temperature}
        body.update((name, value) for name, value in optional.items() if value is not None)
        start = time.perf_counter()
        for attempt in range(1, self.cfg.max_attempts + 1):
            try:
                async with self._limit:
                    text, usage, model = await self._attempt(body)
                return ChatResult(
                    text=text,
                    prompt_tokens=usage.get("prompt_tokens"),
                    completion_tokens=usage.get("completion_tokens"),
                    seconds=time.perf_counter() - start,
                    attempts=attempt,
                    model=model,
                )
            except Exception as error:  # noqa: BLE001 - classified right below
                retryable = is_retryable(error)
                summary = f"{type(error).__name__}: {str(error)[:300]}"
                allowed = on_failure(error) if on_failure else True
                if not retryable or attempt == self.cfg.max_attempts or not allowed:
                    refused = "" if allowed else " (not retried: no room left for another attempt)"
                    raise ChatError(
                        f"{self.cfg.model} call failed after {attempt} attempt(s){refused}: {summary}",
                        attempts=attempt,
                        retryable=retryable,
                    ) from error
                wait = backoff_seconds(self.cfg, attempt, error)
                log.debug("attempt %d failed (%s); retrying in %.2fs", attempt, summary, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, body: dict[str, Any]) -> tuple[str, dict[str, Any], str | None]:
        """One request under the attempt's deadline: httpx's timeout is per read, which a server
        sending a byte at a time never trips."""
        try:
            return await asyncio.wait_for(self._once(body), self.cfg.timeout_s)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"no complete reply within {self.cfg.timeout_s:g}s") from None

    async def _once(self, body: dict[str, Any]) -> tuple[str, dict[str, Any], str | None]:
        """One POST through the SDK (its auth, base URL, headers and HTTP errors as `openai`
        exceptions), the body read here: `chat.completions.create` would walk every message through
        the SDK's typed-params transform and build pydantic models of the reply: CPU on every call
        that changes nothing for plain-text messages, and what a CPU-bound run is short of
        (docs/bench/judge.md)."""
        payload = await self._client.post("/chat/completions", body=body, cast_to=bytes)
        return read_reply(payload)

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ClientConfig, ChatClient]] = (
    weakref.WeakKeyDictionary()
)


async def chat(
    cfg: ClientConfig,
    messages: Sequence[dict[str, str]],
    *,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    seed: int | None = None,
    top_p: float | None = None,
) -> ChatResult:
    """One call through the shared :class:`ChatClient` for `cfg` in the running event loop, so the
    concurrency limit holds across all callers of the same endpoint."""
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(cfg)
    if client is None:
        client = clients[cfg] = ChatClient(cfg)
    return await client.chat(messages, temperature=temperature, max_tokens=max_tokens, seed=seed, top_p=top_p)
