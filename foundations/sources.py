"""Public benchmark and release files: pinned by sha256 in `data/sources.json`, fetched once into a
cache, or read from a local mirror laid out the same way.

Files are named by their path in the public release layout (`fastchat/mt_bench/question.jsonl`,
`qlora-eval/prompts/oa_questions.jsonl`), pinned by sha256 in `data/sources.json`. They are read
from the cache that `guanaco data fetch` fills, or from a local mirror laid out the same way
(`--from DIR`, or `GUANACO_DATA_MIRROR`). A file whose checksum or schema is wrong is refused with
the file, line and field named, so nothing half-read reaches the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from foundations import paths

SOURCES_FILE = paths.DATA_DIR / "sources.json"
MIRROR_ENV = "GUANACO_DATA_MIRROR"
MIRROR_ENVS = (MIRROR_ENV, "GUANACO_SHARED_DATA")


class BenchmarkFileError(ValueError):
    """A benchmark or release file that cannot be used: names the file, line and field at fault."""

    def __init__(self, path: Path | str, line: int | None, field: str | None, problem: str) -> None:
        self.path, self.line, self.field, self.problem = Path(path), line, field, problem
        where = str(path) + (f", line {line}" if line else "") + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {problem}")


class ChecksumError(BenchmarkFileError):
    """A file whose sha256 differs from the one pinned in data/sources.json."""


@dataclass(frozen=True)
class SourceFile:
    key: str
    url: str
    sha256: str
    license: str


@cache
def registry() -> dict[str, Any]:
    return json.loads(SOURCES_FILE.read_text())


def source_file(key: str) -> SourceFile:
    files = registry()["files"]
    if key not in files:
        raise KeyError(f"{key!r} is not in {SOURCES_FILE}; known files: {', '.join(sorted(files))}")
    entry = files[key]
    return SourceFile(key, entry["url"], entry["sha256"], entry["license"])


def benchmark_files(name: str) -> list[str]:
    """The registry keys of every file a benchmark (or the `judge-templates` group) needs."""
    groups = registry()["benchmarks"]
    if name not in groups:
        raise KeyError(f"unknown benchmark {name!r}: choose from {', '.join(groups)}")
    group = groups[name]
    return group.get("files") or [group[part] for part in ("questions", "reference") if part in group]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            path, None, None,
            f"sha256 {actual} does not match the pinned {expected}: the file is damaged or not the "
            "published version; fetch it again or fix the mirror",
        )  # fmt: skip


def default_mirror() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value) if value else None


def find_mirror(explicit: Path | None = None, fallback: Path = Path("..") / "shared" / "data") -> Path | None:
    """A local copy of the public files, for work that may read them without fetching: `explicit`
    (a --from flag), else `GUANACO_DATA_MIRROR` or `GUANACO_SHARED_DATA`, else `fallback` (../shared/data
    from the working directory). None when none of them is a folder."""
    env = [os.environ.get(name) for name in MIRROR_ENVS]
    for candidate in (explicit, *env, fallback):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


def cache_path(key: str) -> Path:
    return paths.benchmarks_dir() / key


def resolve_file(source_key: str, mirror: Path | None = None) -> Path:
    """The verified local copy of a registry file: from `mirror` (or `GUANACO_DATA_MIRROR`) when
    given, else from the cache that `guanaco data fetch` fills."""
    entry = source_file(source_key)
    mirror = mirror or default_mirror()
    path = Path(mirror) / source_key if mirror else cache_path(source_key)
    if not path.is_file():
        hint = "is the mirror laid out like ../shared/data?" if mirror else "run `guanaco data fetch`"
        raise FileNotFoundError(f"{path} not found ({source_key}): {hint}")
    verify(path, entry.sha256)
    return path


def fetch(name: str, mirror: Path | None = None, progress: bool = True) -> list[Path]:
    """Put a benchmark's files into the cache, verified, from the canonical URL or a mirror
    (`mirror`, else `GUANACO_DATA_MIRROR`).

    A file already cached with the right checksum is kept; a download or copy that fails its
    checksum is deleted, never left in the cache."""
    mirror = mirror or default_mirror()
    out = []
    for key in benchmark_files(name):
        entry, target = source_file(key), cache_path(key)
        if target.is_file() and sha256_file(target) == entry.sha256:
            out.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
            partial = Path(tmp.name)
        try:
            if mirror:
                origin = Path(mirror) / key
                if not origin.is_file():
                    raise FileNotFoundError(
                        f"{origin} not found: is the mirror laid out like ../shared/data?"
                    )
                shutil.copyfile(origin, partial)
            else:
                _download(entry.url, partial, progress)
            try:
                verify(partial, entry.sha256)
            except ChecksumError as err:
                raise ChecksumError(origin if mirror else entry.url, None, None, err.problem) from None
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        out.append(target)
    return out


def _download(url: str, dest: Path, progress: bool) -> None:
    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as handle:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress
            ) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    handle.write(block)
                    bar.update(len(block))
    except OSError as err:
        raise ConnectionError(
            f"cannot download {url} ({err}); without network use `guanaco data fetch NAME --from DIR` "
            "with a local mirror laid out like the public release"
        ) from err


# ---------------------------------------------------------------- reading files


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line; a line that is not a JSON object (a truncated
    last line, say) raises BenchmarkFileError naming it."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                truncated = " (the file looks truncated)" if not line.endswith("\n") else ""
                raise BenchmarkFileError(
                    path, number, None, f"not valid JSON{truncated}: {err.msg}"
                ) from None
            if not isinstance(record, dict):
                raise BenchmarkFileError(path, number, None, "expected a JSON object")
            yield number, record


def field(record: dict[str, Any], name: str, kind: type | tuple[type, ...], path: Path, line: int) -> Any:
    """`record[name]`, checked to be of `kind`; BenchmarkFileError names the file, line and field."""
    if name not in record:
        raise BenchmarkFileError(path, line, name, "missing")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise BenchmarkFileError(path, line, name, f"expected {names}, got {type(value).__name__}")
    return value
