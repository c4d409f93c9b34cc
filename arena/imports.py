"""What every import of released evaluations shares: the report it prints, and bulk writes.

An import reads whole files first, decides everything, then writes in one transaction through
`insert_ignore`: a re-import adds nothing, and a failure anywhere leaves the store as it was.
The importers themselves live in `arena.import_qlora` and `arena.import_fastchat`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from arena.query.contestants import contestant_kinds
from arena.query.generations import generation_keys, generation_record
from arena.query.writes import insert_ignore
from arena.store import Contestant, Generation, Judgment


class ImportConflict(ValueError):
    """The store already holds something that contradicts the files (another answer under the
    same contestant and prompt, say): refused rather than silently mixed."""


@dataclass
class ImportReport:
    """Counts of one import. `imported` and `already_present` count generation and judgment rows;
    `new_rows` splits the new rows by table. `inconsistencies` counts records whose file names
    or ids disagree with what the records prove; `skipped` those that could not be imported."""

    source: str
    records_read: int = 0
    imported: int = 0
    already_present: int = 0
    unparsed: int = 0
    inconsistencies: int = 0
    skipped: int = 0
    new_rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count_rows(self, table: str, attempted: int, new: int) -> None:
        self.new_rows[table] = self.new_rows.get(table, 0) + new
        if table in ("generations", "judgments"):
            self.imported += new
            self.already_present += attempted - new

    def summary(self) -> str:
        lines = [
            f"import of {self.source}",
            f"  records read     {self.records_read:>8,}",
            f"  imported         {self.imported:>8,}   (new rows: "
            + ", ".join(f"{k} {v:,}" for k, v in self.new_rows.items()) + ")",
            f"  already present  {self.already_present:>8,}",
            f"  unparsed         {self.unparsed:>8,}   (kept with their raw text, status 'unparsed')",
            f"  inconsistencies  {self.inconsistencies:>8,}",
            f"  skipped          {self.skipped:>8,}",
            f"  seconds          {self.seconds:>8.1f}",
        ]  # fmt: skip
        return "\n".join(lines + [f"  - {note}" for note in _grouped(self.notes)])


def _grouped(notes: list[str], shown: int = 2) -> list[str]:
    """One line per reason ('file: N record(s) reason'), naming a few files: the release repeats
    one quirk in dozens of files, and the full list is in `ImportReport.notes` (and at -v)."""
    by_reason: dict[str, list[tuple[str, int]]] = {}
    for note in notes:
        source, _, rest = note.partition(": ")
        count, _, reason = rest.partition(" record(s) ")
        if not count.isdigit():
            by_reason.setdefault(note, [])
            continue
        by_reason.setdefault(reason, []).append((source, int(count)))
    lines = []
    for reason, files in by_reason.items():
        if not files:
            lines.append(reason)
            continue
        names = ", ".join(source.rsplit("/", 1)[-1] for source, _ in files[:shown])
        more = f" and {len(files) - shown} more" if len(files) > shown else ""
        lines.append(
            f"{sum(n for _, n in files):,} record(s) in {len(files)} file(s) {reason} ({names}{more})"
        )
    return lines


class NoteTally:
    """Counts problems by (file, reason) so the report says '80 records of X: reason' once."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, source: str, reason: str) -> None:
        self.counts[(source, reason)] += 1

    def notes(self) -> list[str]:
        return [f"{source}: {n} record(s) {reason}" for (source, reason), n in sorted(self.counts.items())]


def ensure_contestants(
    session: Session, specs: dict[str, dict[str, Any]], report: ImportReport
) -> dict[str, int]:
    """Contestant ids by name, creating those that are new with the given fields."""
    rows = [{"name": name, **fields} for name, fields in specs.items()]
    report.count_rows("contestants", len(rows), insert_ignore(session, Contestant, uniform(Contestant, rows)))
    found = contestant_kinds(session, list(specs))
    clash = sorted(name for name, _id, kind in found if kind != specs[name].get("kind", "release"))
    if clash:
        raise ImportConflict(
            f"contestant(s) {', '.join(clash)} already exist as another kind of model: the release's answers "
            "would be mixed with theirs; import into another database or rename them"
        )
    return {name: cid for name, cid, _kind in found}


def placeholder_generation(
    prompt_id: int, contestant_id: int, answer_id: str | None, source: str
) -> dict[str, Any]:
    """A generation whose text the release did not publish: it exists so judgments can link to it."""
    return {
        "prompt_id": prompt_id, "contestant_id": contestant_id, "text": "", "backend": "release",
        "external_id": answer_id, "meta": {"text_missing": True, "source": source},
    }  # fmt: skip


def write_generations(
    session: Session, rows: Sequence[dict[str, Any]], report: ImportReport
) -> dict[tuple[int, int], int]:
    """Insert generations; returns generation ids by (prompt id, contestant id).

    An existing generation with another answer id under the same contestant and prompt is a
    conflict (two different answers cannot both be that contestant's). An existing placeholder
    gets the text once a file supplies it."""
    report.count_rows("generations", len(rows), insert_ignore(session, Generation, uniform(Generation, rows)))
    wanted = {(r["prompt_id"], r["contestant_id"]): r for r in rows}
    existing = generation_keys(session, {cid for _, cid in wanted})
    ids = {}
    for key, row in wanted.items():
        gen_id, external_id, meta = existing[key]
        ours = row.get("external_id")
        if ours and external_id and ours != external_id:
            raise ImportConflict(
                f"contestant id {key[1]} already has answer {external_id!r} for prompt id {key[0]}, "
                f"not {ours!r} ({row['meta'].get('source')}): import into a fresh database or rename"
            )
        if (meta or {}).get("text_missing") and not row["meta"].get("text_missing"):
            gen = generation_record(session, gen_id)
            for name in ("text", "turn_texts", "raw_text", "prompt_sent", "external_id", "meta"):
                if name in row:
                    setattr(gen, name, row[name])
        ids[key] = gen_id
    return ids


def write_judgments(
    session: Session, rows: list[dict[str, Any]], report: ImportReport, tally: NoteTally
) -> None:
    """Insert judgments. Two records of one import with the same unique key are reported: the
    second would otherwise vanish silently."""
    seen: set[tuple] = set()
    unique = []
    for row in rows:
        key = (row["judge"], row["template_hash"], row["generation1_id"], row["generation2_id"])
        if key in seen:
            tally.add(
                row["meta"]["source"],
                "repeat an earlier record's judge, template and answers: kept the first",
            )
            report.inconsistencies += 1
            report.skipped += 1
            continue
        seen.add(key)
        unique.append(row)
    report.count_rows("judgments", len(unique), insert_ignore(session, Judgment, uniform(Judgment, unique)))


def uniform(model: type, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the same keys (a bulk insert binds one parameter set): a nullable column that
    some rows leave out is None there; columns with defaults are filled by insert_ignore."""
    with_default = {c.name for c in model.__table__.columns if c.default is not None}
    names = {name for row in rows for name in row} - with_default
    return [{**dict.fromkeys(names), **row} for row in rows]
