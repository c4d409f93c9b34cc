"""Reading a bundle back into a store (`guanaco load-release`): checksums first, then every row
checked, then one transaction.

Only names a release writes are read (no `..`, no absolute path, no link), a file SHA256SUMS does
not vouch for is refused, and a bad row is named by file, line and field before anything is
stored. Records already in the store (same natural key) are kept as they are, so importing into an
empty store and exporting again gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from arena.query.runs import all_runs
from arena.query.vocabulary import STATUSES, VERDICTS
from arena.query.writes import ids_by_key, insert_ignore
from arena.release.schema import (
    CHECKSUMS,
    FORMATS,
    LATER_COLUMNS,
    SCHEMA,
    TABLES,
    bundle_file_name,
    iso_time,
    stable_id,
)
from arena.store import Contestant, Generation, Judgment, Prompt, Run, Store, Tag
from foundations.errors import UserError
from foundations.sources import sha256_file


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
    existing = {stable_id("run", r.kind, r.name, iso_time(r.started_at)): r.id for r in all_runs(session)}
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
