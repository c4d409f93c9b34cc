"""The release bundle: every record of the store as JSONL and Parquet, with a data card, and back.

A bundle is meant to be trusted and reused by people who never saw the store, so:

- **stable ids** derived from natural keys (``vicuna/12`` for a prompt, the contestant's name, a
  hash of the natural key for runs, generations, judgments and tags), never database row ids, so
  two stores with the same content export the same bundle;
- **byte-identical** output for the same store: rows sorted by id, fixed column order, nested
  values as canonical JSON (sorted keys), deterministic Parquet, and no export-time timestamps;
- **no secrets**: keys such as ``api_key``, ``authorization``, ``password`` are redacted from every
  config and metadata dict, anything shaped like an API key is redacted from every string, and URLs
  lose their user name, password and (outside prompts, answers and judges' reasons) their query;
- **no machine paths**: outside prompts, answers and judges' reasons, an absolute path keeps only
  its file's name (:mod:`arena.redact`);
- **pseudonyms** by default: annotator ``alice`` becomes ``annotator-<16 hex of HMAC-SHA256(key,
  "alice")>``, the key being a secret of the store (or ``GUANACO_PSEUDONYM_KEY``) that never leaves
  it, so guessing names and hashing them re-identifies no one; ``--real-names`` opts out;
- **checksums**: ``SHA256SUMS`` (``sha256sum -c`` format) covers every file, the card lists them;
  a new release deletes only files an earlier release wrote in its folder, and reading a bundle
  back refuses any file that SHA256SUMS does not vouch for;
- FastChat's ``clean_battle`` format (``battles.json``) so their Elo notebooks read it unchanged.

:func:`import_bundle` reads a bundle back into a store; importing into an empty store and
exporting again gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from arena.query.secret import store_secret
from arena.query.vocabulary import HUMAN_PREFIX, STATUSES, VERDICTS
from arena.query.writes import ids_by_key, insert_ignore
from arena.redact import redact_text
from arena.store import Contestant, Generation, Judgment, Prompt, Run, Store, Tag
from foundations.errors import UserError

FORMATS = ("jsonl", "parquet")
REDACTED = "[redacted]"
CHECKSUMS = "SHA256SUMS"
CARD = "README.md"
BATTLES = "battles.json"

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
PSEUDONYM_KEY_ENV = "GUANACO_PSEUDONYM_KEY"
"""A key shared by several stores, so that their bundles give one annotator the same pseudonym."""
PSEUDONYM = re.compile(r"annotator-[0-9a-f]{16}")
CONTENT = {
    "prompts": {"turns", "context", "reference"},
    "generations": {"text", "turn_texts", "raw_text", "prompt_sent"},
    "judgments": {"raw"},
    "tags": {"note"},
}
"""Data kept as written (a prompt may well name /usr/bin): only credentials in URLs are cut."""
IDENTIFIERS = {"run_id", "prompt_id", "benchmark", "key", "name", "contestant", "generation_id",
               "generation1_id", "generation2_id", "model_1", "model_2", "judgment_id", "tag_id",
               "annotator", "tag"}  # fmt: skip
"""Columns that link records: never rewritten as paths, or the links would break."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # str | int | float | json | time
    doc: str


def _c(name: str, kind: str, doc: str) -> Column:
    return Column(name, kind, doc)


SCHEMA: dict[str, list[Column]] = {
    "runs": [
        _c("run_id", "str", "stable id: hash of kind, name and start time"),
        _c("kind", "str", "tournament, generation, import, training, ..."),
        _c("name", "str", "the run's name"),
        _c("status", "str", "running, done, failed"),
        _c(
            "config",
            "json",
            "the run's configuration (judge model, sampling parameters, ...), secrets redacted",
        ),
        _c("started_at", "time", "when the run started (UTC, ISO 8601)"),
        _c("finished_at", "time", "when it finished, if it did"),
    ],
    "prompts": [
        _c("prompt_id", "str", "stable id: `<benchmark>/<key>`"),
        _c("benchmark", "str", "benchmark name (vicuna, oa, mt-bench, ...)"),
        _c("key", "str", "the item's id within its benchmark"),
        _c("category", "str", "the benchmark's category, if any"),
        _c("turns", "json", "user turns to answer, in order"),
        _c("context", "json", "earlier conversation turns given as-is (role/content dicts)"),
        _c("reference", "json", "reference answers, if the benchmark has them"),
        _c("source", "str", "the file the prompt came from"),
        _c("source_sha256", "str", "sha256 of that file"),
        _c("meta", "json", "anything else the source said"),
    ],
    "contestants": [
        _c("name", "str", "stable id: the contestant's unique name"),
        _c("kind", "str", "local, api, release or human"),
        _c("base_model", "str", "base model (Hugging Face id or path)"),
        _c("adapter", "str", "LoRA adapter, if any"),
        _c("quantization", "str", "quantization used to generate (nf4, ...)"),
        _c("api_model", "str", "API model name for API contestants"),
        _c("meta", "json", "free-form metadata, secrets redacted"),
        _c("created_at", "time", "when it entered the arena"),
    ],
    "generations": [
        _c("generation_id", "str", "stable id: hash of prompt_id and contestant"),
        _c("prompt_id", "str", "-> prompts.prompt_id"),
        _c("contestant", "str", "-> contestants.name"),
        _c("text", "str", "the answer (the first turn's, for several turns)"),
        _c("turn_texts", "json", "every turn's answer"),
        _c("raw_text", "str", "what the model emitted before it was cut at the end of its turn"),
        _c("prompt_sent", "str", "the full prompt as sent to the model"),
        _c("params", "json", "sampling parameters (temperature, top_p, max_new_tokens, ...)"),
        _c("seed", "int", "random seed"),
        _c("backend", "str", "transformers, vllm, openai, release, ..."),
        _c("prompt_tokens", "int", "tokens in the prompt"),
        _c("completion_tokens", "int", "tokens generated"),
        _c("seconds", "float", "wall-clock seconds to generate"),
        _c("external_id", "str", "the id the source release gave the answer"),
        _c("run_id", "str", "-> runs.run_id"),
        _c("meta", "json", "anything else, secrets redacted"),
        _c("created_at", "time", "when it was generated or imported"),
    ],
    "judgments": [
        _c("judgment_id", "str", "stable id: hash of judge, template_hash, generation1_id, generation2_id"),
        _c("prompt_id", "str", "-> prompts.prompt_id"),
        _c("generation1_id", "str", "-> generations.generation_id of the answer shown first (slot 1)"),
        _c("generation2_id", "str", "-> generations.generation_id of the answer shown second (slot 2)"),
        _c("model_1", "str", "contestant of slot 1 (denormalised for convenience)"),
        _c("model_2", "str", "contestant of slot 2 (denormalised for convenience)"),
        _c("judge", "str", "`openai:<model>` for a model judge, `human:<annotator>` for a person's vote"),
        _c("template_id", "str", "the judge template's id"),
        _c("template_hash", "str", "sha256 of the judge template's text"),
        _c("turn", "int", "the conversation turn judged (MT-bench's second turn has its own templates)"),
        _c("verdict", "str", "`1` slot 1 won, `2` slot 2 won, `tie`, `both_bad`; empty for score pairs"),
        _c("score1", "float", "slot 1's score, for scoring templates"),
        _c("score2", "float", "slot 2's score, for scoring templates"),
        _c("status", "str", "`ok` (verdict read), `unparsed` or `error` (raw output kept)"),
        _c("raw", "str", "the judge's full output: its reasons"),
        _c("prompt_tokens", "int", "judge prompt tokens"),
        _c("completion_tokens", "int", "judge completion tokens"),
        _c("cost_usd", "float", "cost of the judge call"),
        _c("external_id", "str", "the id the source release gave the judgment"),
        _c("run_id", "str", "-> runs.run_id"),
        _c("meta", "json", "anything else, secrets redacted"),
        _c("created_at", "time", "when it was judged or imported"),
    ],
    "tags": [
        _c("tag_id", "str", "stable id: hash of judgment_id, annotator and tag"),
        _c("judgment_id", "str", "-> judgments.judgment_id"),
        _c("annotator", "str", "who tagged it"),
        _c("tag", "str", "`lemon` or `cherry`"),
        _c("note", "str", "the annotator's note"),
        _c("created_at", "time", "when it was tagged"),
    ],
}
TABLES = tuple(SCHEMA)
SORT_KEYS = {
    "runs": ("run_id",),
    "prompts": ("prompt_id",),
    "contestants": ("name",),
    "generations": ("prompt_id", "contestant"),
    "judgments": ("prompt_id", "model_1", "model_2", "judge", "template_hash"),
    "tags": ("judgment_id", "annotator", "tag"),
}


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how. `leaderboard_orderings` keeps the bundled Elo tables quick."""

    benchmark: str | None = None
    formats: tuple[str, ...] = FORMATS
    pseudonymise: bool = True
    leaderboard_orderings: int = 200
    seed: int = 0


# ---------------------------------------------------------------- ids, scrubbing, pseudonyms


def stable_id(*parts: Any) -> str:
    """16 hex digits of sha256 over the parts: the same natural key gives the same id anywhere."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]


class Pseudonyms:
    """`annotator-<16 hex of HMAC-SHA256(key, name)>`: stable for one key, and a pseudonym is kept
    as it is (re-exporting an imported bundle changes nothing). Without the key, a list of guessed
    names cannot be hashed into the same pseudonyms."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, name: str) -> str:
        if PSEUDONYM.fullmatch(name):
            return name
        return "annotator-" + hmac.new(self._key, name.encode(), hashlib.sha256).hexdigest()[:16]

    def judge(self, judge: str) -> str:
        if judge.startswith(HUMAN_PREFIX):
            return HUMAN_PREFIX + self(judge[len(HUMAN_PREFIX) :])
        return judge


def pseudonym_key(session: Session) -> bytes:
    """`GUANACO_PSEUDONYM_KEY` if set, else the store's own secret (made on first use)."""
    return (os.environ.get(PSEUDONYM_KEY_ENV) or store_secret(session, "pseudonym-key")).encode()


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


def canonical(value: Any) -> Any:
    """Nested dicts with sorted keys, so that JSON text never depends on insertion order."""
    if isinstance(value, dict):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ---------------------------------------------------------------- reading the store


def collect(session: Session, options: ExportOptions) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, as exported: stable ids, scrubbed, sorted, in column order."""
    personal = Pseudonyms(pseudonym_key(session)) if options.pseudonymise else None
    prompts = _records(session, Prompt, Prompt.benchmark == options.benchmark if options.benchmark else None)
    prompt_ids = {p.id: f"{p.benchmark}/{p.key}" for p in prompts}
    in_benchmark = (
        select(Prompt.id).where(Prompt.benchmark == options.benchmark) if options.benchmark else None
    )
    runs = _records(session, Run)
    run_ids = {r.id: stable_id("run", r.kind, scrub(r.name), _time(r.started_at)) for r in runs}
    names = dict(session.execute(select(Contestant.id, Contestant.name)).all())
    generations = _records(
        session, Generation, None if in_benchmark is None else Generation.prompt_id.in_(in_benchmark)
    )
    gen_ids = {
        g.id: stable_id("generation", prompt_ids[g.prompt_id], names[g.contestant_id]) for g in generations
    }
    gen_model = {g.id: names[g.contestant_id] for g in generations}
    judgments = _records(
        session, Judgment, None if in_benchmark is None else Judgment.prompt_id.in_(in_benchmark)
    )

    def judge_name(judge: str) -> str:
        return scrub(personal.judge(judge) if personal else judge)

    judgment_ids = {
        j.id: stable_id("judgment", judge_name(j.judge), j.template_hash, gen_ids[j.generation1_id],
                        gen_ids[j.generation2_id])
        for j in judgments
    }  # fmt: skip
    tags = [t for t in _records(session, Tag) if t.judgment_id in judgment_ids]
    used_models = set(gen_model.values()) if options.benchmark else set(names.values())
    contestants = [c for c in _records(session, Contestant) if c.name in used_models]
    annotator = personal or (lambda name: name)

    def row(table: str, values: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for col in SCHEMA[table]:
            value = values[col.name]
            content = col.name in CONTENT.get(table, ()) or col.name in IDENTIFIERS
            if col.kind == "json":
                value = canonical(scrub(value, personal, content))
            elif isinstance(value, str):
                value = scrub(value, content=content)
            out[col.name] = value
        return out

    def run_of(record: Any) -> str | None:
        return run_ids.get(record.run_id)

    rows = {
        "runs": [
            row("runs", {"run_id": run_ids[r.id], "kind": r.kind, "name": scrub(r.name), "status": r.status,
                         "config": r.config, "started_at": _time(r.started_at),
                         "finished_at": _time(r.finished_at)})
            for r in runs
        ],
        "prompts": [
            row("prompts", {"prompt_id": prompt_ids[p.id], **_fields(p, SCHEMA["prompts"][1:])}) for p in prompts
        ],
        "contestants": [
            row("contestants", {**_fields(c, SCHEMA["contestants"]), "created_at": _time(c.created_at)})
            for c in contestants
        ],
        "generations": [
            row("generations", {
                **_fields(g, SCHEMA["generations"]), "generation_id": gen_ids[g.id],
                "prompt_id": prompt_ids[g.prompt_id], "contestant": names[g.contestant_id],
                "run_id": run_of(g), "created_at": _time(g.created_at)})
            for g in generations
        ],
        "judgments": [
            row("judgments", {
                **_fields(j, SCHEMA["judgments"]), "judgment_id": judgment_ids[j.id],
                "prompt_id": prompt_ids[j.prompt_id], "generation1_id": gen_ids[j.generation1_id],
                "generation2_id": gen_ids[j.generation2_id], "model_1": gen_model[j.generation1_id],
                "model_2": gen_model[j.generation2_id], "judge": judge_name(j.judge),
                "run_id": run_of(j), "created_at": _time(j.created_at)})
            for j in judgments
        ],
        "tags": [
            row("tags", {"tag_id": stable_id("tag", judgment_ids[t.judgment_id], annotator(t.annotator), t.tag),
                         "judgment_id": judgment_ids[t.judgment_id], "annotator": annotator(t.annotator),
                         "tag": t.tag, "note": t.note, "created_at": _time(t.created_at)})
            for t in tags
        ],
    }  # fmt: skip
    if options.benchmark:
        used_runs = {r["run_id"] for t in ("generations", "judgments") for r in rows[t]}
        rows["runs"] = [r for r in rows["runs"] if r["run_id"] in used_runs]
    for table, keys in SORT_KEYS.items():
        rows[table].sort(key=lambda r, keys=keys: tuple("" if r[k] is None else str(r[k]) for k in keys))
    return rows


def _records(session: Session, model: type, where: Any = None) -> list[Any]:
    """Plain rows (not ORM objects: several times faster for tens of thousands of judgments)."""
    stmt = select(model.__table__)
    return list(session.execute(stmt if where is None else stmt.where(where)))


def _fields(record: Any, columns: Iterable[Column]) -> dict[str, Any]:
    """The record's values of those columns that the store table has."""
    values = record._mapping
    return {c.name: values[c.name] for c in columns if c.name in values}


# ---------------------------------------------------------------- writing files


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n")


def write_parquet(path: Path, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Nested columns are stored as canonical JSON text, so the schema never depends on content."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "str": pa.string(),
        "json": pa.string(),
        "time": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
    }
    schema = pa.schema([pa.field(c.name, types[c.kind]) for c in SCHEMA[table]])
    columns = {}
    for col in SCHEMA[table]:
        values = [r[col.name] for r in rows]
        if col.kind == "json":
            values = [
                None if v is None else json.dumps(v, ensure_ascii=False, separators=(",", ":"))
                for v in values
            ]
        columns[col.name] = values
    arrow = pa.Table.from_pydict(columns, schema=schema)
    pq.write_table(arrow, path, compression="zstd", use_dictionary=False, write_statistics=False)


def battles_rows(rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Judgments in FastChat's `clean_battle` shape (pairwise verdicts with status ok only)."""
    winners = {"1": "model_a", "2": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}
    out = []
    for j in rows["judgments"]:
        winner = winners.get(j["verdict"] or "")
        if j["status"] != "ok" or winner is None:
            continue
        stamp = dt.datetime.fromisoformat(j["created_at"]).replace(tzinfo=dt.timezone.utc).timestamp()
        out.append({
            "question_id": j["prompt_id"], "model_a": j["model_1"], "model_b": j["model_2"],
            "winner": winner, "judge": j["judge"], "turn": j["turn"], "anony": True, "tstamp": stamp,
            "judgment_id": j["judgment_id"],
        })  # fmt: skip
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_bundle(
    store: Store, out: Path, options: ExportOptions | None = None, progress: bool = False
) -> dict[str, Path]:
    """Write the bundle into `out` (created; files of an earlier bundle are replaced).

    Returns every written file by its name relative to `out`."""
    from tqdm.auto import tqdm

    from arena.leaderboard import render
    from arena.release_card import leaderboards, write_card

    options = options or ExportOptions()
    unknown = set(options.formats) - set(FORMATS)
    if unknown or not options.formats:
        raise UserError(f"--format: unknown {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    bar = tqdm(total=len(TABLES) + 4, desc="release", unit="step", disable=not progress)
    with store.session() as session:
        rows = collect(session, options)
    bar.update()
    if not rows["prompts"]:
        where = f" for benchmark {options.benchmark!r}" if options.benchmark else ""
        raise UserError(f"nothing to release: the store {store.url} has no prompts{where}")
    _clear_previous(out)
    files: dict[str, Path] = {}
    for table, table_rows in rows.items():
        if "jsonl" in options.formats:
            files[f"{table}.jsonl"] = out / f"{table}.jsonl"
            write_jsonl(files[f"{table}.jsonl"], table_rows)
        if "parquet" in options.formats:
            files[f"{table}.parquet"] = out / f"{table}.parquet"
            write_parquet(files[f"{table}.parquet"], table, table_rows)
        bar.update()
    files[BATTLES] = out / BATTLES
    files[BATTLES].write_text(
        json.dumps(battles_rows(rows), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    bar.update()
    boards = leaderboards(rows, options)
    for name, board in boards.items():
        path = out / "leaderboards" / f"{name}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_text(render(board, "csv"), encoding="utf-8")
        files[f"leaderboards/{name}.csv"] = path
    checksums = {name: sha256_file(path) for name, path in sorted(files.items())}
    files[CARD] = out / CARD
    write_card(files[CARD], rows, options, checksums, boards)
    checksums[CARD] = sha256_file(files[CARD])
    lines = [f"{digest}  {name}\n" for name, digest in sorted(checksums.items())]
    files[CHECKSUMS] = out / CHECKSUMS
    files[CHECKSUMS].write_text("".join(lines), encoding="utf-8")
    bar.update(2)
    bar.close()
    return files


def _clear_previous(out: Path) -> None:
    """Make `out` an empty folder: a new one, or an earlier bundle whose files are removed (so no
    stale file outlives its SHA256SUMS). Only names a release writes are removed, and only inside
    `out`: a SHA256SUMS listing anything else (`../x`, `/etc/x`, a link) is refused, and so is any
    other non-empty folder."""
    if out.is_dir() and any(out.iterdir()):
        sums = out / CHECKSUMS
        if not sums.is_file() or sums.is_symlink():
            raise UserError(
                f"--out {out}: the folder is not empty and holds no release bundle; choose a new folder"
            )
        listed = _listed_names(sums)
        root = out.resolve()
        for name in listed:
            if (
                not bundle_file_name(name)
                or (out / name).is_symlink()
                or root not in (out / name).resolve().parents
            ):
                raise UserError(
                    f"{sums}: lists {name!r}, which no release writes; nothing was deleted: choose a new "
                    "folder for --out"
                )
        for name in listed:
            (out / name).unlink(missing_ok=True)
        sums.unlink()
    out.mkdir(parents=True, exist_ok=True)


BUNDLE_FILE = re.compile(
    r"(?:(?:" + "|".join(TABLES) + r")\.(?:jsonl|parquet)|" + re.escape(BATTLES) + "|" + re.escape(CARD)
    + r"|leaderboards/[A-Za-z0-9_.-]+\.csv)"
)  # fmt: skip
"""Every name a release writes: the tables, the battles, the card and leaderboards/<safe name>.csv."""


def bundle_file_name(name: str) -> bool:
    """Whether `name` is one a release writes (so no path outside the bundle, no `..`)."""
    return bool(BUNDLE_FILE.fullmatch(name)) and ".." not in name.split("/")


def _listed_names(sums: Path) -> list[str]:
    return [line.partition("  ")[2] for line in sums.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------- reading a bundle back


def verify_bundle(directory: Path) -> dict[str, str]:
    """Check every file listed in SHA256SUMS, and that every table file present is listed; raises
    UserError naming the first problem. Only names a release writes are accepted (no `..`, no
    absolute path, no link), so nothing outside the bundle is ever read."""
    sums = directory / CHECKSUMS
    if not sums.is_file():
        raise UserError(f"{directory}: no {CHECKSUMS} file; is this a guanaco release bundle?")
    listed = {}
    for number, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), 1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise UserError(f"{sums}:{number}: expected '<sha256>  <file>', got {line!r}")
        if not bundle_file_name(name):
            raise UserError(
                f"{sums}:{number}: {name!r} is not a file of a release bundle (a path, or an unknown name)"
            )
        path = directory / name
        if path.is_symlink() or not path.is_file():
            raise UserError(f"{sums}:{number}: {name} is listed but missing (or a link)")
        if sha256_file(path) != digest:
            raise UserError(f"{path}: sha256 differs from {CHECKSUMS} line {number}; the file was changed")
        listed[name] = digest
    for table in TABLES:
        for fmt in FORMATS:
            name = f"{table}.{fmt}"
            if name not in listed and (directory / name).exists():
                raise UserError(f"{directory / name}: not listed in {CHECKSUMS}; its content is unverified")
    return listed


def read_table(directory: Path, table: str) -> list[tuple[str, int, dict[str, Any]]]:
    """Rows of one table as (file, line, row), from JSONL if present, else from Parquet."""
    jsonl, parquet = directory / f"{table}.jsonl", directory / f"{table}.parquet"
    if jsonl.is_file():
        out = []
        with jsonl.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    out.append((jsonl.name, number, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise UserError(f"{jsonl}:{number}: not JSON ({err})") from None
        return out
    if parquet.is_file():
        import pyarrow.parquet as pq

        json_cols = [c.name for c in SCHEMA[table] if c.kind == "json"]
        out = []
        for number, row in enumerate(pq.read_table(parquet).to_pylist(), 1):
            for name in json_cols:
                row[name] = None if row.get(name) is None else json.loads(row[name])
            out.append((parquet.name, number, row))
        return out
    raise UserError(f"{directory}: neither {jsonl.name} nor {parquet.name} found")


def import_bundle(store: Store, directory: Path) -> dict[str, int]:
    """Read a bundle into `store` in one transaction; returns how many new rows each table got.

    Records already in the store (same natural key) are kept as they are, so importing twice, or
    into a store that holds part of the bundle, adds only what is missing."""
    directory = Path(directory)
    verify_bundle(directory)
    data = {table: read_table(directory, table) for table in TABLES}
    for table, rows in data.items():
        for file, number, row in rows:
            _check_row(directory / file, number, table, row)
    counts = {}
    with store.session() as session:
        run_ids, counts["runs"] = _import_runs(session, data["runs"])
        counts["prompts"] = insert_ignore(
            session, Prompt, [_plain(r, "prompts", "prompt_id") for _, _, r in data["prompts"]]
        )
        counts["contestants"] = insert_ignore(
            session, Contestant, [_plain(r, "contestants") for _, _, r in data["contestants"]]
        )
        prompt_db = {f"{b}/{k}": i for (b, k), i in ids_by_key(session, Prompt).items()}
        contestant_db = ids_by_key(session, Contestant)
        gen_rows, gen_keys = [], {}
        for file, number, r in data["generations"]:
            prompt = _lookup(prompt_db, r, "prompt_id", directory / file, number)
            contestant = _lookup(contestant_db, r, "contestant", directory / file, number)
            gen_keys[r["generation_id"]] = (prompt, contestant)
            gen_rows.append({**_plain(r, "generations", "generation_id", "prompt_id", "contestant"),
                             "prompt_id": prompt, "contestant_id": contestant,
                             "run_id": run_ids.get(r["run_id"])})  # fmt: skip
        counts["generations"] = insert_ignore(session, Generation, gen_rows)
        gen_by_key = ids_by_key(session, Generation)
        gen_db = {gid: gen_by_key[key] for gid, key in gen_keys.items()}
        judg_rows, judg_keys = [], {}
        for file, number, r in data["judgments"]:
            g1 = _lookup(gen_db, r, "generation1_id", directory / file, number)
            g2 = _lookup(gen_db, r, "generation2_id", directory / file, number)
            judg_keys[r["judgment_id"]] = (r["judge"], r["template_hash"], g1, g2)
            judg_rows.append({**_plain(r, "judgments", "judgment_id", "prompt_id", "generation1_id",
                                       "generation2_id", "model_1", "model_2"),
                              "prompt_id": _lookup(prompt_db, r, "prompt_id", directory / file, number),
                              "generation1_id": g1, "generation2_id": g2, "run_id": run_ids.get(r["run_id"])})  # fmt: skip
        counts["judgments"] = insert_ignore(session, Judgment, judg_rows)
        judg_by_key = ids_by_key(session, Judgment)
        judg_db = {jid: judg_by_key[key] for jid, key in judg_keys.items()}
        tag_rows = [
            {**_plain(r, "tags", "tag_id", "judgment_id"),
             "judgment_id": _lookup(judg_db, r, "judgment_id", directory / file, number)}
            for file, number, r in data["tags"]
        ]  # fmt: skip
        counts["tags"] = insert_ignore(session, Tag, tag_rows)
    return counts


LATER_COLUMNS = {"judgments": {"turn": 1}}
"""Columns added after the first bundle format, with the value an older bundle implies."""


def _check_row(file: Path, number: int, table: str, row: dict[str, Any]) -> None:
    """Every column present (older bundles get the later columns' defaults), and a judgment's
    verdict and status among the known values."""
    for name, default in LATER_COLUMNS.get(table, {}).items():
        row.setdefault(name, default)
    missing = [c.name for c in SCHEMA[table] if c.name not in row]
    if missing:
        raise UserError(f"{file}:{number}: missing field {missing[0]!r}")
    if table == "judgments":
        if row["verdict"] is not None and row["verdict"] not in VERDICTS:
            raise UserError(
                f"{file}:{number}: field 'verdict' = {row['verdict']!r}; expected one of {VERDICTS} or null"
            )
        if row["status"] not in STATUSES:
            raise UserError(
                f"{file}:{number}: field 'status' = {row['status']!r}; expected one of {STATUSES}"
            )


def _import_runs(session: Session, rows: list[tuple[str, int, dict[str, Any]]]) -> tuple[dict[str, int], int]:
    """Runs have no unique key in the store: match them by their stable id, add the missing ones."""
    existing = {
        stable_id("run", r.kind, r.name, _time(r.started_at)): r.id for r in session.scalars(select(Run))
    }
    new = 0
    for _, _, r in rows:
        if r["run_id"] in existing:
            continue
        run = Run(**_plain(r, "runs", "run_id"))
        session.add(run)
        session.flush()
        existing[r["run_id"]] = run.id
        new += 1
    return existing, new


def _plain(row: dict[str, Any], table: str, *skip: str) -> dict[str, Any]:
    """A bundle row as store columns: times parsed, bundle-only columns left out."""
    out = {}
    for col in SCHEMA[table]:
        if col.name in skip:
            continue
        value = row[col.name]
        if col.kind == "time" and value is not None:
            value = dt.datetime.fromisoformat(value)
        if (
            col.kind == "json"
            and value is None
            and col.name in ("meta", "config", "turns", "context", "params")
        ):
            value = {} if col.name in ("meta", "config", "params") else []
        out[col.name] = value
    return out


def _lookup(ids: dict[Any, int], row: dict[str, Any], field: str, file: Path, number: int) -> int:
    try:
        return ids[row[field]]
    except KeyError:
        raise UserError(
            f"{file}:{number}: field {field!r} = {row[field]!r} names no record in the bundle"
        ) from None
