"""The human arena in a browser: Vote, Leaderboard and Explore tabs over the one store (Gradio 6),
served behind :class:`arena.webguard.Guard`.

The page is :mod:`arena.weblayout`, its handlers :mod:`arena.webhandlers`, and every untrusted
text reaches it through :mod:`arena.webrender`. Import this module only after
``GRADIO_ANALYTICS_ENABLED=False`` is set (``app.py`` and ``guanaco app`` do), so that starting the
app calls nothing outside the machine.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402

from arena.passwords import Authenticator  # noqa: E402
from arena.store import Store  # noqa: E402
from arena.webguard import (  # noqa: E402
    Guard,
    RateLimiter,
    RateLimits,
    VoterIds,
    allowed_hosts,
    is_loopback,
    is_wildcard,
)
from arena.webhandlers import Arena  # noqa: E402
from arena.weblayout import build_app, theme  # noqa: E402
from arena.webrender import CSS  # noqa: E402


@dataclass(frozen=True)
class Exposure:
    """Who may reach the app and how: the address it binds, the extra names it answers to, logins
    (user -> scrypt hash) or anonymous voting, Explore on or off, and the rate limits."""

    host: str = "127.0.0.1"
    port: int = 7860
    allowed_hosts: tuple[str, ...] = ()
    users: dict[str, str] | None = None
    anonymous: bool = False
    explore: bool = False
    limits: RateLimits = field(default_factory=RateLimits)

    def check(self) -> None:
        """Refuse to serve beyond this machine without logins or an explicit `--anonymous`, and a
        wildcard address without the names people will type."""
        if is_loopback(self.host):
            return
        if not self.users and not self.anonymous:
            raise ValueError(
                f"--host {self.host} lets other machines in: give --auth-file (logins; write them with "
                "guanaco users add) or --anonymous (anyone may vote, under an id per browser)"
            )
        if is_wildcard(self.host) and not self.allowed_hosts:
            raise ValueError(
                f"--host {self.host} listens on every address: name the ones people will type with "
                "--allowed-host (e.g. --allowed-host arena.example.org)"
            )


class Served:
    """The app running in a uvicorn server on a thread of this process (for tests and benches)."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.server, self.thread, self.url = server, thread, url

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(
    store: Store, exposure: Exposure, benchmark: str | None = None, block: bool = True
) -> Served | None:
    """Build the app behind :class:`arena.webguard.Guard` and serve it on `exposure.host:port`
    (analytics, SSR, monitoring and MCP off). Blocks until stopped unless `block` is False."""
    exposure.check()
    limiter = RateLimiter()
    arena = Arena(store, benchmark, auth=bool(exposure.users), explore=exposure.explore,
                  limits=exposure.limits, limiter=limiter)  # fmt: skip
    blocks = build_app(arena)
    blocks.queue(default_concurrency_limit=8)
    outer = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    outer.add_middleware(CORSMiddleware, allow_origins=[], allow_credentials=False)  # no origin but our own
    outer.add_middleware(Guard, hosts=allowed_hosts(exposure.host, exposure.allowed_hosts),
                         limits=exposure.limits, limiter=limiter,
                         voters=None if exposure.users else VoterIds())  # fmt: skip
    auth = (
        Authenticator(exposure.users, limiter, exposure.limits.login_failures).check
        if exposure.users
        else None
    )
    gr.mount_gradio_app(
        outer, blocks, path="/", auth=auth, ssr_mode=False, enable_monitoring=False, mcp_server=False,
        footer_links=["api"], theme=theme(), css=CSS, server_name=exposure.host, server_port=exposure.port,
        max_file_size="1kb",  # nothing here takes uploads: no filling the disk through Gradio's /upload
    )  # fmt: skip
    config = uvicorn.Config(outer, host=exposure.host, port=exposure.port, log_level="warning",
                            proxy_headers=False, server_header=False, timeout_graceful_shutdown=5)  # fmt: skip
    server = uvicorn.Server(config)
    if block:
        server.run()
        return None
    thread = threading.Thread(target=server.run, name="guanaco-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on {exposure.host}:{exposure.port}")
        time.sleep(0.05)
    return Served(server, thread, f"http://{exposure.host}:{exposure.port}/")
