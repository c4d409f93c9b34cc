"""What stands between the arena's handlers and the network: hosts, origins, rate limits, voter ids.

The app is meant to face people who are not all friendly, so the rules live on the server:

- **Host and Origin allowlist.** A request whose ``Host`` is not one of the arena's names is
  refused (DNS rebinding), and so is any request carrying an ``Origin`` from another site: no page
  elsewhere can call a handler with a visitor's cookies. Gradio's own CORS layer, which reflects
  any origin with credentials when the app listens beyond loopback, is replaced by one that
  allows no foreign origin at all.
- **Rate limits.** Token buckets per IP address on every POST (Gradio's queue, uploads, login)
  here, and per session and per IP on every event handler (:class:`RateLimits`, applied by
  :meth:`arena.webhandlers.Arena.guarded`); failed logins per IP are throttled here, per user name in
  :mod:`arena.passwords`.
- **Anonymous voter ids.** Without logins, the server gives each browser an id in a signed,
  ``HttpOnly``, ``SameSite=Lax`` cookie (sent when a visitor follows a link here, never with
  another site's requests, which the Origin check refuses anyway) and hands it to the handlers in a header that no client
  can set (any such header sent is dropped). New ids are rate-limited per IP address. The signing
  secret is `GUANACO_APP_SECRET` when set, else new for each app process (a restart then gives
  every browser a new id, and so a new annotator).

Limits hold per app process, in memory; behind a reverse proxy every visitor shares the proxy's
address, so the per-IP limits then act as limits on the whole arena.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import threading
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

VOTER_COOKIE = "guanaco-voter"
VOTER_HEADER = "x-guanaco-voter"
"""The header carrying the verified voter id to the handlers; stripped from every incoming request."""
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class RateLimits:
    """Requests allowed per `window_s` seconds; `handlers` maps each kind of handler to
    (per session, per IP). The defaults let a person vote every 2 seconds and keep a classroom
    behind one NAT address voting; leaderboard and explore requests cost more server time."""

    window_s: float = 60.0
    handlers: tuple[tuple[str, int, int], ...] = (
        ("next", 60, 600),
        ("vote", 30, 300),
        ("board", 20, 60),
        ("explore", 30, 150),
    )
    posts_per_ip: int = 1200
    """Every POST (queue joins, uploads, logins) per IP and window, before any handler runs."""
    new_voters_per_ip: int = 30
    """Anonymous voter ids given to one IP address per hour."""
    login_failures: int = 10
    """Failed logins per IP address, and per user name, per 15 minutes before logins are refused."""

    def budget(self, kind: str) -> tuple[int, int]:
        for name, per_session, per_ip in self.handlers:
            if name == kind:
                return per_session, per_ip
        raise KeyError(f"no rate limit for handlers of kind {kind!r}")

    def scaled(self, factor: float) -> RateLimits:
        """Every limit multiplied by `factor` (a load test from one address, a trusted network)."""
        return RateLimits(
            self.window_s,
            tuple((k, int(s * factor), int(i * factor)) for k, s, i in self.handlers),
            int(self.posts_per_ip * factor),
            int(self.new_voters_per_ip * factor),
            int(self.login_failures * factor),
        )


LOGIN_WINDOW_S = 15 * 60.0
NEW_VOTER_WINDOW_S = 3600.0


class RateLimiter:
    """Token buckets by key: `limit` tokens, refilled evenly over `window` seconds. Thread-safe;
    full buckets are forgotten now and then, so memory follows the active keys only."""

    def __init__(self) -> None:
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def wait(self, key: Hashable, limit: int, window: float, consume: bool = True) -> float:
        """0 if the request may go ahead (a token is taken when `consume`), else seconds to wait."""
        now = time.monotonic()
        rate = limit / window
        with self._lock:
            tokens, then = self._buckets.get(key, (float(limit), now))
            tokens = min(float(limit), tokens + (now - then) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / rate if rate > 0 else window
            self._buckets[key] = (tokens - 1.0 if consume else tokens, now)
            if now - self._last_sweep > window:
                self._sweep(now, rate, limit)
        return 0.0

    def _sweep(self, now: float, rate: float, limit: int) -> None:
        self._last_sweep = now
        full = [k for k, (t, then) in self._buckets.items() if t + (now - then) * rate >= limit]
        for key in full:
            del self._buckets[key]


def hostname(value: str | None) -> str:
    """The lower-case host name of a ``Host`` header or an origin URL, without port or brackets."""
    if not value:
        return ""
    parsed = urlsplit(value if "//" in value else f"//{value}")
    return (parsed.hostname or "").lower()


def is_loopback(host: str) -> bool:
    """True for names and addresses that reach this machine only (not 0.0.0.0 or ::)."""
    name = hostname(host) or host.lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Names the arena answers to: loopback names, the bound address unless it is a wildcard, and
    the names people type (`extra`, e.g. the public name behind a proxy)."""
    names = set(LOOPBACK_NAMES)
    if not is_wildcard(bind):
        names.add(hostname(bind) or bind.lower())
    names.update(hostname(h) or h.lower() for h in extra)
    return frozenset(names)


class VoterIds:
    """Anonymous voter ids, signed with a secret of this process, so the server only accepts the
    ids it gave out (and so can limit how many one address gets)."""

    def __init__(self, secret: bytes | None = None) -> None:
        configured = os.environ.get("GUANACO_APP_SECRET", "").encode()
        self._secret = secret or configured or secrets.token_bytes(32)

    def _sign(self, voter: str) -> str:
        return hmac.new(self._secret, voter.encode(), hashlib.sha256).hexdigest()[:32]

    def new(self) -> tuple[str, str]:
        """A fresh (voter id, cookie value)."""
        voter = secrets.token_hex(8)
        return voter, f"{voter}.{self._sign(voter)}"

    def verify(self, cookie: str | None) -> str | None:
        """The voter id in a cookie value, or None when it is missing, malformed or not signed here."""
        voter, _, signature = (cookie or "").partition(".")
        if len(voter) != 16 or not hmac.compare_digest(signature.encode(), self._sign(voter).encode()):
            return None
        return voter


class Guard:
    """ASGI middleware enforcing the allowlist, POST and login limits, and anonymous voter ids
    (`voters` is None when people log in instead)."""

    def __init__(
        self,
        app: Any,
        hosts: frozenset[str],
        limits: RateLimits,
        limiter: RateLimiter,
        voters: VoterIds | None,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.limits = limits
        self.limiter = limiter
        self.voters = voters

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal:
            await _plain(send, scope, *refusal)
            return
        new_cookie = None
        kept = [(k, v) for k, v in scope["headers"] if k.lower() != VOTER_HEADER.encode()]
        if self.voters is not None:
            voter = self.voters.verify(_cookie(headers.get("cookie"), VOTER_COOKIE))
            if voter is None and not self._wait(("new-voter", _ip(scope)), self.limits.new_voters_per_ip,
                                                NEW_VOTER_WINDOW_S):  # fmt: skip
                voter, new_cookie = self.voters.new()
            if voter is not None:
                kept.append((VOTER_HEADER.encode(), voter.encode()))
        scope = {**scope, "headers": kept}
        if scope["type"] == "http" and scope["method"] == "POST" and _is_login(scope):
            send = self._watch_login(send, _ip(scope))
        if new_cookie:
            send = _with_cookie(send, new_cookie)
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict, headers: dict[str, str]) -> tuple[int, str] | None:
        if hostname(headers.get("host")) not in self.hosts:
            return 421, "unknown host: this arena answers to its own names only"
        origin = headers.get("origin")
        if origin is not None and hostname(origin) not in self.hosts:
            return 403, "cross-site request refused"
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        ip = _ip(scope)
        if self._wait(("post", ip), self.limits.posts_per_ip, self.limits.window_s):
            return 429, "too many requests from your address: wait a minute"
        if _is_login(scope) and self._wait(
            ("login-failures", ip), self.limits.login_failures, LOGIN_WINDOW_S, consume=False
        ):
            return 429, "too many failed logins from your address: wait 15 minutes"
        return None

    def _wait(self, key: Hashable, limit: int, window: float, consume: bool = True) -> float:
        return self.limiter.wait(key, limit, window, consume)

    def _watch_login(self, send: Any, ip: str) -> Any:
        """Count a failed login (any 4xx answer) against the address it came from."""

        async def watching(message: dict) -> None:
            if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
                self._wait(("login-failures", ip), self.limits.login_failures, LOGIN_WINDOW_S)
            await send(message)

        return watching


def _is_login(scope: dict) -> bool:
    return scope["path"].rstrip("/").endswith("/login")


def _ip(scope: dict) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed cookie header is no cookie
        return None
    return jar[name].value if name in jar else None


def _with_cookie(send: Any, value: str) -> Any:
    cookie = f"{VOTER_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000"

    async def sending(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
        await send(message)

    return sending


async def _plain(send: Any, scope: dict, status: int, text: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
