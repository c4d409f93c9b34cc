"""Any OpenAI-compatible endpoint (OpenAI, a vLLM or `transformers serve` server) as a backend.

Calls go through the project's one client (:mod:`judges.client`): a concurrency limit,
retries with backoff and jitter on 429/5xx/timeouts/dropped connections honouring Retry-After, and
the token usage the server reports. The key is read from the environment variable the contestant
names; it is never stored."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from arena.backends.base import GenerateParams, Request, Result
from arena.prompting import cut_at_turn_end
from arena.store import Contestant
from judges.client import ChatClient, ChatError, ClientConfig


def client_config(contestant: Contestant, params: GenerateParams) -> ClientConfig:
    """Endpoint and limits for an API contestant: a stored base URL, else the one its env var names."""
    meta = contestant.meta or {}
    base_url = meta.get("base_url") or os.environ.get(meta.get("base_url_env", "OPENAI_BASE_URL")) or None
    return ClientConfig(model=contestant.api_model, base_url=base_url,
                        api_key_env=meta.get("api_key_env", "OPENAI_API_KEY"),
                        concurrency=params.concurrency)  # fmt: skip


class OpenAIBackend:
    """Answers a batch concurrently; a request that fails for good is reported, not fatal to the batch."""

    name = "openai"

    def __init__(self, contestant: Contestant, params: GenerateParams) -> None:
        self.contestant = contestant
        self.params = params
        self.cfg = client_config(contestant, params)

    def identity(self) -> dict[str, Any]:
        return {"name": self.contestant.name, "api_model": self.cfg.model, "base_url": self.cfg.base_url,
                "engine": "openai"}  # fmt: skip

    def sampling(self) -> dict[str, Any]:
        return {
            "temperature": self.params.temperature,
            "top_p": self.params.top_p,
            "max_new_tokens": self.params.max_new_tokens,
        }

    def generate(self, requests: list[Request]) -> list[Result]:
        return asyncio.run(self._generate(requests))

    async def _generate(self, requests: list[Request]) -> list[Result]:
        async with ChatClient(self.cfg) as client:
            return list(await asyncio.gather(*(self._one(client, r) for r in requests)))

    async def _one(self, client: ChatClient, request: Request) -> Result:
        sent = json.dumps(request.messages, ensure_ascii=False)
        try:
            reply = await client.chat(request.messages, temperature=self.params.temperature,
                                      max_tokens=self.params.max_new_tokens, seed=self.params.seed,
                                      top_p=self.params.top_p)  # fmt: skip
        except ChatError as err:
            return Result(text="", raw="", prompt_sent=sent, prompt_tokens=None, completion_tokens=None,
                          seconds=0.0, error=str(err))  # fmt: skip
        return Result(text=cut_at_turn_end(reply.text, self.params.stop), raw=reply.text, prompt_sent=sent, prompt_tokens=reply.prompt_tokens,
                      completion_tokens=reply.completion_tokens, seconds=reply.seconds,
                      meta={"attempts": reply.attempts, "served_model": reply.model})  # fmt: skip

    def close(self) -> None:
        """Nothing to free: each batch's client is closed when the batch ends."""
