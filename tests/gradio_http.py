"""A bare HTTP client for the arena's Gradio queue, as an attacker or a load test would use it.

No gradio_client: one `httpx.Client` (its cookie jar is the "browser"), events joined by
`fn_index` through ``/gradio_api/queue/join`` with any data and any session hash, results read
from the SSE stream ``/gradio_api/queue/data``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

VOTE_APIS = {"vote_a": "1", "vote_b": "2", "vote_tie": "tie", "vote_both_bad": "both_bad"}


@dataclass
class Result:
    """One event's end: the outputs, or the error the server sent."""

    success: bool
    data: list[Any]
    error: str | None

    def text(self) -> str:
        return " ".join(str(d) for d in self.data if isinstance(d, str)) if self.success else str(self.error)


class RawGradio:
    """One visitor: a cookie jar, a session hash, and the app's dependencies by api name."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, load: bool = True) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers or {}, timeout=60)
        self.session_hash = uuid.uuid4().hex[:11]
        self.config: dict[str, Any] = self.http.get("/config").json() if load else {}

    def fn_index(self, api_name: str) -> int:
        for dep in self.config["dependencies"]:
            if dep.get("api_name") == api_name:
                return dep["id"]
        raise KeyError(api_name)

    def dependencies(self) -> list[dict[str, Any]]:
        return list(self.config["dependencies"])

    def call(
        self,
        fn_index: int,
        data: list[Any] | None = None,
        session_hash: str | None = None,
        event_data: dict[str, Any] | None = None,
    ) -> Result:
        """Join the queue for one event and wait for its result (`data` defaults to a None per input)."""
        session = session_hash or self.session_hash
        if data is None:
            inputs = next(
                (d["inputs"] for d in self.config.get("dependencies", []) if d["id"] == fn_index), []
            )
            data = [None] * len(inputs)
        body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": event_data,
                "trigger_id": None}  # fmt: skip
        joined = self.http.post("/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            return Result(False, [], f"HTTP {joined.status_code}: {joined.text}")
        event_id = joined.json()["event_id"]
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") != event_id or message.get("msg") != "process_completed":
                    continue
                output = message.get("output") or {}
                if message.get("success"):
                    return Result(True, list(output.get("data") or []), None)
                return Result(False, [], str(output.get("error") or output))
        raise RuntimeError(f"no result for event {event_id}")

    def api(self, api_name: str, data: list[Any] | None = None, session_hash: str | None = None) -> Result:
        return self.call(self.fn_index(api_name), data, session_hash)

    def close(self) -> None:
        self.http.close()
