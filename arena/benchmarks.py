"""The benchmarks (Vicuna, OA, MT-bench): where their files come from and how they become prompts.

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
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from arena import paths

BENCHMARKS = ("vicuna", "oa", "mt-bench")
SAMPLE = "sample"
SOURCES_FILE = paths.DATA_DIR / "sources.json"
SAMPLE_FILE = paths.DATA_DIR / "samples" / "prompts.jsonl"
MIRROR_ENV = "GUANACO_DATA_MIRROR"


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


def _prompt_row(benchmark: str, key: str, category: str | None, turns: list[str], path: Path,
                digest: str, context: list | None = None, reference: list | None = None,
                meta: dict | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "benchmark": benchmark, "key": key, "category": category, "turns": turns,
        "context": context or [], "reference": reference, "source": str(path),
        "source_sha256": digest, "meta": meta or {},
    }  # fmt: skip


def parse_vicuna_questions(path: Path, benchmark: str = "vicuna") -> list[dict[str, Any]]:
    """Vicuna-format questions (`question_id`, `text`, `category`), as in the QLoRA release and
    the project's own sample file."""
    digest = sha256_file(path)
    rows = []
    for line, rec in read_jsonl(path):
        qid = field(rec, "question_id", (int, str), path, line)
        text = field(rec, "text", str, path, line)
        rows.append(_prompt_row(benchmark, str(qid), rec.get("category"), [text], path, digest))
    return _unique(rows, path)


def parse_fastchat_questions(
    path: Path, benchmark: str, reference: Path | None = None
) -> list[dict[str, Any]]:
    """FastChat-format questions (`question_id`, `category`, `turns`), with the reference answers
    of `reference` (a FastChat model_answer file) where present, else the question's own
    `reference` field (MT-bench has one for some math and reasoning items)."""
    digest = sha256_file(path)
    refs = _reference_answers(reference) if reference else {}
    rows = []
    for line, rec in read_jsonl(path):
        qid = str(field(rec, "question_id", (int, str), path, line))
        if "turns" not in rec and isinstance(rec.get("text"), str):
            rec = {**rec, "turns": [rec["text"]]}  # the Vicuna format of the QLoRA release
        turns = field(rec, "turns", list, path, line)
        if not turns or not all(isinstance(t, str) for t in turns):
            raise BenchmarkFileError(path, line, "turns", "expected a non-empty list of strings")
        ref, ref_source = refs.get(qid), "fastchat gpt-4 reference answer"
        if ref is None and rec.get("reference"):
            ref, ref_source = list(rec["reference"]), "question file"
        meta = {"reference_source": ref_source} if ref else {}
        rows.append(_prompt_row(benchmark, qid, rec.get("category"), turns, path, digest,
                                reference=ref, meta=meta))  # fmt: skip
    return _unique(rows, path)


def _reference_answers(path: Path) -> dict[str, list[str]]:
    out = {}
    for line, rec in read_jsonl(path):
        qid = str(field(rec, "question_id", (int, str), path, line))
        choices = field(rec, "choices", list, path, line)
        if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("turns"), list):
            raise BenchmarkFileError(path, line, "choices", "expected [{'turns': [...]}, ...]")
        out[qid] = list(choices[0]["turns"])
    return out


_SPEAKER = re.compile(r"\s*### (Human|Assistant):[ \t]?")


def split_oa_input(text: str) -> list[dict[str, str]]:
    """`### Human: a ### Assistant: b ### Human: c ### Assistant:` as role/content turns; the
    trailing empty assistant turn (the one to answer) is dropped."""
    parts = _SPEAKER.split(text)
    if parts[0].strip():
        raise ValueError("text before the first '### Human:'")
    turns = [
        {"role": "user" if speaker == "Human" else "assistant", "content": content.strip()}
        for speaker, content in zip(parts[1::2], parts[2::2], strict=True)
    ]
    if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()
    return turns


def parse_oa_questions(path: Path, benchmark: str = "oa") -> list[dict[str, Any]]:
    """The QLoRA release's OA queries: the last user turn to answer, earlier turns as context, the
    top-ranked human reply (`output`) as reference; keyed by the OASST1 message id."""
    digest = sha256_file(path)
    rows = []
    for line, rec in read_jsonl(path):
        key = field(rec, "message_id", str, path, line)
        flat = field(rec, "input", str, path, line)
        try:
            turns = split_oa_input(flat)
        except ValueError as err:
            raise BenchmarkFileError(path, line, "input", str(err)) from None
        if not turns or turns[-1]["role"] != "user":
            raise BenchmarkFileError(path, line, "input", "does not end with a '### Human:' turn to answer")
        reference = [rec["output"]] if isinstance(rec.get("output"), str) else None
        meta = {k: rec[k] for k in ("parent_id", "rank", "lang") if k in rec}
        rows.append(_prompt_row(benchmark, key, rec.get("category"), [turns[-1]["content"]], path,
                                digest, context=turns[:-1], reference=reference, meta=meta))  # fmt: skip
    return _unique(rows, path)


def _unique(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        if row["key"] in seen:
            raise BenchmarkFileError(path, number, "question_id", f"duplicate id {row['key']!r}")
        seen.add(row["key"])
    return rows


# ---------------------------------------------------------------- benchmarks as prompt rows


def load_benchmark(name: str, source: Path | None = None) -> list[dict[str, Any]]:
    """Rows ready for the Prompt table.

    `source` is a mirror directory laid out like the public release, or a single questions file
    in the benchmark's own format (then unpinned: its checksum is recorded, not checked). Without
    it, the cache filled by `guanaco data fetch` (or `GUANACO_DATA_MIRROR`) is used."""
    if name == SAMPLE:
        return load_sample_prompts(source if source and Path(source).is_file() else None)
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}: choose from {', '.join((*BENCHMARKS, SAMPLE))}")
    spec = registry()["benchmarks"][name]
    source = Path(source) if source else None
    if source is not None and source.is_file():
        questions, reference = source, None
    else:
        questions = resolve_file(spec["questions"], source)
        reference = resolve_file(spec["reference"], source) if "reference" in spec else None
    if name == "oa":
        return parse_oa_questions(questions)
    return parse_fastchat_questions(questions, name, reference)


def load_sample_prompts(path: Path | None = None) -> list[dict[str, Any]]:
    """The project's own small prompt set (benchmark "sample"), for the offline demo."""
    return parse_vicuna_questions(Path(path) if path else SAMPLE_FILE, benchmark=SAMPLE)


def insert_prompts(session: Any, rows: list[dict[str, Any]]) -> int:
    from arena.store import Prompt, insert_ignore

    return insert_ignore(session, Prompt, rows)


def ensure_prompts(store: Any, name: str, source: Path | None = None) -> int:
    """Load a benchmark into the store; prompts already there are kept. Returns how many were new."""
    rows = load_benchmark(name, source)
    with store.session() as session:
        return insert_prompts(session, rows)
