"""A scripted OpenAI-compatible HTTP server of the tests' own, on 127.0.0.1.

Real HTTP (the standard library's threading server), so the real openai client, its connection
pool and timeouts are exercised. Each chat request takes the next scripted :data:`Action` (or the
default reply when the script is empty), after a fixed latency; every request is recorded.

    from tests.scripted_server import ScriptedServer, scripted_server_fixture, status  # noqa: F401

    def test_x(scripted_server):  # the fixture's name
        scripted_server.reply = lambda body: "Assistant 1"
        scripted_server.push(status(429, retry_after=0.1), status(500))
        ... ClientConfig(model="judge", base_url=scripted_server.url) ...
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Reply = Callable[[dict[str, Any]], str]
"""Computes the assistant's text from the request body (model, messages, temperature, ...)."""

Action = Callable[["_Handler", dict[str, Any]], None]
"""Answers one chat request; helpers below build the usual ones."""


def words(text: str) -> int:
    """Token counts the server reports: whitespace-separated words, deterministic and checkable."""
    return len(text.split())


def completion_body(body: dict[str, Any], text: str) -> dict[str, Any]:
    prompt = sum(words(str(m.get("content", ""))) for m in body.get("messages", []))
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": words(text),
            "total_tokens": prompt + words(text),
        },
    }


def text(content: str | Reply) -> Action:
    """Reply with fixed text, or text computed from the request."""

    def act(handler: _Handler, body: dict[str, Any]) -> None:
        handler.send_json(200, completion_body(body, content(body) if callable(content) else content))

    return act


def status(
    code: int, retry_after: float | str | None = None, message: str = "scripted error", **headers: str
) -> Action:
    """An HTTP error (429, 500, ...), optionally with a Retry-After header (seconds, or any text)
    and other headers (`x_should_retry="false"` sends `x-should-retry: false`)."""

    def act(handler: _Handler, _body: dict[str, Any]) -> None:
        value = f"{retry_after:g}" if isinstance(retry_after, float | int) else retry_after
        sent = {name.replace("_", "-"): text for name, text in headers.items()}
        if value is not None:
            sent["Retry-After"] = value
        handler.send_json(code, {"error": {"message": message, "type": "scripted", "code": code}}, sent)

    return act


def hang(seconds: float) -> Action:
    """Sleep past the client's timeout, then reply (to a client that has given up)."""

    def act(handler: _Handler, body: dict[str, Any]) -> None:
        time.sleep(seconds)
        handler.server.scripted.default_action(handler, body)

    return act


def trickle(interval: float) -> Action:
    """A valid reply sent one byte every `interval` seconds: every read arrives well within any
    per-read timeout, however long the whole reply takes. Records whether the client hung up."""

    def act(handler: _Handler, body: dict[str, Any]) -> None:
        payload = json.dumps(completion_body(body, handler.server.scripted.reply_text(body))).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.flush()
        try:
            for index in range(len(payload)):
                handler.wfile.write(payload[index : index + 1])
                handler.wfile.flush()
                time.sleep(interval)
        except (BrokenPipeError, ConnectionResetError):
            handler.server.scripted.hung_up += 1
            handler.close_connection = handler.unanswered = True

    return act


def drop() -> Action:
    """Close the connection without answering."""

    def act(handler: _Handler, _body: dict[str, Any]) -> None:
        handler.close_connection = handler.unanswered = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    return act


def malformed() -> Action:
    """Status 200 with a body that is not JSON."""

    def act(handler: _Handler, _body: dict[str, Any]) -> None:
        handler.send_raw(200, b'{"choices": [ this is not json', "application/json")

    return act


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    unanswered = False

    def log_message(self, *_args: Any) -> None:  # keep test output clean
        pass

    def setup(self) -> None:
        """Headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm and the
        client's delayed ACK would add ~40 ms to every reply."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_raw(self, code: int, payload: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def send_json(self, code: int, obj: Any, headers: dict | None = None) -> None:
        self.send_raw(code, json.dumps(obj).encode(), "application/json", headers)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":  # as `transformers serve` answers
            self.send_json(200, {"status": "ok"})
        elif self.path.rstrip("/").endswith("/models"):
            model = {"id": self.server.scripted.model_name, "object": "model", "owned_by": "tests"}
            self.send_json(200, {"object": "list", "data": [model]})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(raw or b"{}")
        scripted = self.server.scripted
        action = scripted.next_action(body, {k.lower(): v for k, v in self.headers.items()})
        if scripted.latency:
            time.sleep(scripted.latency)
        self.unanswered = False
        action(self, body)
        if not self.unanswered:
            with scripted._lock:
                scripted.answered += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    scripted: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout) leaves a broken pipe: expected here, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class ScriptedServer:
    """Runs in a background thread; `url` is the base URL to give the client (ends in /v1)."""

    def __init__(
        self, reply: Reply | str = "OK", latency: float = 0.0, model_name: str = "scripted", port: int = 0
    ) -> None:
        self.reply = reply
        self.latency = latency
        self.model_name = model_name
        self.requests: list[dict[str, Any]] = []
        self.answered = 0
        """Chat replies sent in full (the client may still have given up on them)."""
        self.hung_up = 0
        """Trickled replies the client stopped reading."""
        self._script: deque[Action] = deque()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.scripted = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *actions: Action) -> None:
        """Queue actions for the next chat requests, in order."""
        with self._lock:
            self._script.extend(actions)

    def reply_text(self, body: dict[str, Any]) -> str:
        return self.reply(body) if callable(self.reply) else self.reply

    def default_action(self, handler: _Handler, body: dict[str, Any]) -> None:
        text(self.reply)(handler, body)

    def next_action(self, body: dict[str, Any], headers: dict[str, str]) -> Action:
        with self._lock:
            self.requests.append({"body": body, "headers": headers, "time": time.time()})
            return self._script.popleft() if self._script else self.default_action

    def user_texts(self) -> list[str]:
        """The last user message of every recorded request, in arrival order."""
        with self._lock:
            return [r["body"]["messages"][-1]["content"] for r in self.requests]

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@pytest.fixture(name="scripted_server")
def scripted_server_fixture() -> Iterator[ScriptedServer]:
    """A fresh scripted server per test, replying "OK" until told otherwise."""
    with ScriptedServer() as server:
        yield server


def main() -> None:
    """`python -m tests.scripted_server [--latency S] [--reply MODULE:FUNCTION] [--port N]
    [--until-signal]`: serve in the foreground (benchmarks run it in its own process, so it does not
    share the client's GIL) until the parent closes our stdin, or with `--until-signal` until
    SIGTERM/SIGINT (as a child server that the tests watch being stopped)."""
    import argparse
    import contextlib
    import importlib
    import signal
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--reply", help="MODULE:FUNCTION computing the reply text from the request body")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--until-signal", action="store_true")
    args = parser.parse_args()
    reply: Reply | str = "OK"
    if args.reply:
        module, name = args.reply.split(":")
        reply = getattr(importlib.import_module(module), name)
    with ScriptedServer(reply=reply, latency=args.latency, port=args.port) as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            if args.until_signal:
                signal.signal(signal.SIGTERM, signal.default_int_handler)
                signal.pause()
            else:
                sys.stdin.read()  # until the parent closes our stdin


if __name__ == "__main__":
    main()
