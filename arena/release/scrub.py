"""What a bundle never carries: secrets, credentials in URLs, machine paths, and (when
pseudonymising) people's names and their machines' identifiers.

Strings go through :func:`arena.redact.redact_text` (URLs and paths); dict keys and key-shaped
strings are caught here. Prompts, answers and judges' reasons are data and keep their paths.
"""

from __future__ import annotations

import re
from typing import Any

from arena.redact import redact_text
from arena.release.pseudonyms import Pseudonyms

REDACTED = "[redacted]"

SECRET_KEY = re.compile(
    r"(api[_-]?key|apikey|authorization|password|passwd|secret|credential|cookie|bearer"
    r"|(^|[_-])(access|auth|api|hf|refresh|session|openai|github)[_-]?token$|^token$)",
    re.IGNORECASE,
)
"""Dict keys whose values are never exported (``max_tokens`` and ``eos_token`` are not secrets)."""

SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,}|Bearer\s+[A-Za-z0-9._\-]{16,})")
"""Strings shaped like an OpenAI or Hugging Face key, or a bearer header, wherever they appear."""
SECRET_MARKERS = ("sk-", "hf_", "Bearer")
"""Substrings every SECRET_VALUE match contains: a cheap test before the regular expression."""

PERSONAL_KEYS = {"annotator", "user", "username", "voter"}
"""Metadata keys holding a person's name: pseudonymised along with judge names."""
PERSONAL_DROP = {"ip", "ip_address", "session_id", "user_agent"}
"""Metadata keys identifying a person's machine: dropped when pseudonymising."""


def scrub(value: Any, pseudonyms: Pseudonyms | None = None, content: bool = False) -> Any:
    """The value with secrets, credentials in URLs and (unless `content`) machine paths redacted;
    with `pseudonyms`, people's names pseudonymised and their machines' identifiers dropped."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = str(key)
            if SECRET_KEY.search(name):
                out[name] = REDACTED
            elif pseudonyms and name.lower() in PERSONAL_DROP:
                continue
            elif pseudonyms and name.lower() in PERSONAL_KEYS and isinstance(item, str):
                out[name] = pseudonyms(item)
            else:
                out[name] = scrub(item, pseudonyms, content)
        return out
    if isinstance(value, list | tuple):
        return [scrub(item, pseudonyms, content) for item in value]
    if isinstance(value, str):
        if any(marker in value for marker in SECRET_MARKERS):
            value = SECRET_VALUE.sub(REDACTED, value)
        return redact_text(value, content)
    return value
