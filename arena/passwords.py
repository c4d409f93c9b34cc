"""The arena's logins: an auth file of scrypt-hashed passwords, written by `guanaco users add`.

A line is ``user:scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``; a line holding a password in clear is
refused with the file and line, so an old file is never served as it is. Checking a password costs
one scrypt (about 16 MiB and tens of milliseconds), the same for unknown users, and a user name
with too many recent failures is refused even the right password for a while (the address it
came from is throttled in :mod:`arena.webguard`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from arena.webguard import LOGIN_WINDOW_S, RateLimiter

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCHEME = "scrypt"
MAX_USER = 100


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A salted scrypt hash in the auth file's format."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"{SCHEME}${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """True if `password` matches the hash `stored` (compared in constant time)."""
    _, n, r, p, salt, digest = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(digest) // 2)  # fmt: skip
    return hmac.compare_digest(got.hex(), digest)


def valid_user(user: str) -> str:
    name = user.strip()
    if not name or len(name) > MAX_USER or ":" in name or any(c.isspace() for c in name):
        raise ValueError(f"user name {user!r}: 1 to {MAX_USER} characters, no spaces or ':'")
    return name


def _parse_hash(value: str) -> bool:
    parts = value.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return False
    try:
        int(parts[1]), int(parts[2]), int(parts[3]), bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return False
    return True


def read_auth_file(path: str | Path) -> dict[str, str]:
    """User name -> stored hash; errors name the file and line (blank lines and `#` comments skipped)."""
    users: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if not sep or not user.strip():
            raise ValueError(
                f"{path}, line {number}: expected user:scrypt$... (write it with guanaco users add)"
            )
        if not _parse_hash(stored):
            raise ValueError(
                f"{path}, line {number}: the password of {user.strip()!r} is not a scrypt hash "
                "(passwords in clear are refused): write it with guanaco users add"
            )
        users[user.strip()] = stored
    if not users:
        raise ValueError(f"{path}: no users (add one with guanaco users add)")
    return users


def add_user(path: str | Path, user: str, password: str) -> bool:
    """Write `user` with a fresh hash of `password` (replacing an existing line); True if new.
    The file is rewritten atomically and readable by its owner only."""
    if len(password) < 8:
        raise ValueError("the password needs at least 8 characters")
    name = valid_user(user)
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    entry = f"{name}:{hash_password(password)}"
    kept = [line for line in lines if line.partition(":")[0].strip() != name]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join([*kept, entry]) + "\n")
    os.replace(tmp, path)
    return len(kept) == len(lines)


class Authenticator:
    """Checks logins against the hashes, off the event loop, and refuses a user name after
    `failures` wrong passwords within 15 minutes. Give Gradio the bound method :meth:`check`: Gradio
    awaits only what `inspect.iscoroutinefunction` recognises, and would take the coroutine an
    async ``__call__`` returns for a successful login."""

    def __init__(self, users: dict[str, str], limiter: RateLimiter, failures: int) -> None:
        self.users = users
        self.limiter = limiter
        self.failures = failures
        self._dummy = hash_password(secrets.token_hex(8))

    async def check(self, user: str, password: str) -> bool:
        key = ("login-user", user)
        if self.limiter.wait(key, self.failures, LOGIN_WINDOW_S, consume=False):
            return False
        ok = await asyncio.to_thread(check_password, password, self.users.get(user, self._dummy))
        if not ok or user not in self.users:
            self.limiter.wait(key, self.failures, LOGIN_WINDOW_S)
            return False
        return True
