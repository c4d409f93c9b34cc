"""What may leave this machine: URLs without credentials, paths without this machine's layout.

Used where a record is kept for others to read (a run's configuration, a release bundle):
credentials ride in URLs (``https://user:pass@host``, ``?api-key=...``, a PostgreSQL URL's
password), and absolute paths name a person's home and folders. Both are cut here, in one place.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit, urlunsplit

URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")
ABSOLUTE_PATH = re.compile(
    r"(?:^|(?<=[\s\"'=(,\[{]))"
    r"(?:(?:~|(?:\.\./)*\.\.)?/[^\s\"'/<>`]+(?:/[^\s\"'/<>`]+)*/?|[A-Za-z]:\\[^\s\"'<>`]*)"
)
"""A path from the root, home or a parent folder (`/home/ann/x`, `~/x`, `../../x`) or a Windows one
(`C:\\Users\\x`), standing on its own (after a space, quote, `=`, bracket or comma): `and/or`,
`1/2` or `data/x.jsonl` are not."""


def safe_url(url: str, keep_query: bool = False) -> str:
    """`url` without user name, password, (unless `keep_query`) query and fragment; a URL to a file
    (`sqlite:////home/ann/a.db`, `file:///...`) keeps only the file's name."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL after all (a bad port, an unclosed IPv6 bracket)
        return url.split("://", 1)[0] + "://[unreadable url]"
    host = parts.hostname or ""
    if not host:
        return f"{parts.scheme}:///{PurePosixPath(parts.path).name}"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    path = parts.path
    query, fragment = (parts.query, parts.fragment) if keep_query else ("", "")
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def local_path(path: str) -> str:
    """A path as it may be published: the file's name alone (its folders are this machine's)."""
    if re.match(r"[A-Za-z]:\\", path):
        return PureWindowsPath(path).name
    return PurePosixPath(path.rstrip("/")).name


def redact_text(text: str, content: bool = False) -> str:
    """`text` with credentials cut from every URL in it. Unless it is `content` (a prompt, an answer,
    a judge's reasons: data to keep as written), also URL queries and absolute paths."""
    if "://" in text:
        text = URL.sub(lambda m: _url_in_text(m.group(0), content), text)
    if not content and ("/" in text or "\\" in text):
        text = ABSOLUTE_PATH.sub(lambda m: local_path(m.group(0)), text)
    return text


def _url_in_text(url: str, content: bool) -> str:
    if content:
        parts = urlsplit(url)
        return url if parts.username is None and parts.password is None else safe_url(url, keep_query=True)
    return safe_url(url)
