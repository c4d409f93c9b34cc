"""Writing a bundle: the tables as JSONL and Parquet, FastChat's battles, the leaderboards, the
data card and SHA256SUMS, into a folder that holds nothing else.

Output is byte-identical for the same store: rows sorted by id, fixed column order, nested values
as canonical JSON, deterministic Parquet, and no export-time timestamps.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arena.leaderboard import render
from arena.release.card import write_card
from arena.release.config import ReleaseConfig
from arena.release.leaderboards import leaderboards
from arena.release.rows import collect
from arena.release.schema import BATTLES, CARD, CHECKSUMS, SCHEMA, TABLES, bundle_file_name
from arena.store import Store
from foundations.errors import UserError
from foundations.sources import sha256_file


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


def export_bundle(
    store: Store, out: Path, config: ReleaseConfig | None = None, progress: bool = False
) -> dict[str, Path]:
    """Write the bundle into `out` (created; files of an earlier bundle are replaced).

    Returns every written file by its name relative to `out`."""
    from tqdm.auto import tqdm

    config = config or ReleaseConfig()
    bar = tqdm(total=len(TABLES) + 4, desc="release", unit="step", disable=not progress)
    with store.session() as session:
        rows = collect(session, config)
    bar.update()
    if not rows["prompts"]:
        where = f" for benchmark {config.benchmark!r}" if config.benchmark else ""
        raise UserError(f"nothing to release: the store {store.url} has no prompts{where}")
    _clear_previous(out)
    files: dict[str, Path] = {}
    for table, table_rows in rows.items():
        if "jsonl" in config.formats:
            files[f"{table}.jsonl"] = out / f"{table}.jsonl"
            write_jsonl(files[f"{table}.jsonl"], table_rows)
        if "parquet" in config.formats:
            files[f"{table}.parquet"] = out / f"{table}.parquet"
            write_parquet(files[f"{table}.parquet"], table, table_rows)
        bar.update()
    files[BATTLES] = out / BATTLES
    files[BATTLES].write_text(
        json.dumps(battles_rows(rows), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    bar.update()
    boards = leaderboards(rows, config)
    for name, board in boards.items():
        path = out / "leaderboards" / f"{name}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_text(render(board, "csv"), encoding="utf-8")
        files[f"leaderboards/{name}.csv"] = path
    checksums = {name: sha256_file(path) for name, path in sorted(files.items())}
    files[CARD] = out / CARD
    write_card(files[CARD], rows, config, checksums, boards)
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


def _listed_names(sums: Path) -> list[str]:
    return [line.partition("  ")[2] for line in sums.read_text(encoding="utf-8").splitlines() if line]
