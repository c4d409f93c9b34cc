"""The store's records as bundle rows: stable ids instead of row ids, scrubbed, sorted, in the
schema's column order. The only part of a release that reads the store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from arena.query.bundle import table_rows
from arena.release.config import ReleaseConfig
from arena.release.pseudonyms import Pseudonyms, pseudonym_key
from arena.release.schema import (
    CONTENT,
    IDENTIFIERS,
    SCHEMA,
    SORT_KEYS,
    Column,
    canonical,
    iso_time,
    stable_id,
)
from arena.release.scrub import scrub
from arena.store import Contestant, Generation, Judgment, Prompt, Run, Tag


def collect(session: Session, config: ReleaseConfig) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, as exported: stable ids, scrubbed, sorted, in column order."""
    personal = Pseudonyms(pseudonym_key(session)) if config.pseudonymise else None
    prompts = table_rows(session, Prompt, config.benchmark)
    prompt_ids = {p.id: f"{p.benchmark}/{p.key}" for p in prompts}
    runs = table_rows(session, Run)
    run_ids = {r.id: stable_id("run", r.kind, scrub(r.name), iso_time(r.started_at)) for r in runs}
    contestants = table_rows(session, Contestant)
    names = {c.id: c.name for c in contestants}
    generations = table_rows(session, Generation, config.benchmark)
    gen_ids = {
        g.id: stable_id("generation", prompt_ids[g.prompt_id], names[g.contestant_id]) for g in generations
    }
    gen_model = {g.id: names[g.contestant_id] for g in generations}
    judgments = table_rows(session, Judgment, config.benchmark)

    def judge_name(judge: str) -> str:
        return scrub(personal.judge(judge) if personal else judge)

    judgment_ids = {
        j.id: stable_id("judgment", judge_name(j.judge), j.template_hash, gen_ids[j.generation1_id],
                        gen_ids[j.generation2_id])
        for j in judgments
    }  # fmt: skip
    tags = [t for t in table_rows(session, Tag) if t.judgment_id in judgment_ids]
    used_models = set(gen_model.values()) if config.benchmark else set(names.values())
    contestants = [c for c in contestants if c.name in used_models]
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
                         "config": r.config, "started_at": iso_time(r.started_at),
                         "finished_at": iso_time(r.finished_at)})
            for r in runs
        ],
        "prompts": [
            row("prompts", {"prompt_id": prompt_ids[p.id], **_fields(p, SCHEMA["prompts"][1:])}) for p in prompts
        ],
        "contestants": [
            row("contestants", {**_fields(c, SCHEMA["contestants"]), "created_at": iso_time(c.created_at)})
            for c in contestants
        ],
        "generations": [
            row("generations", {
                **_fields(g, SCHEMA["generations"]), "generation_id": gen_ids[g.id],
                "prompt_id": prompt_ids[g.prompt_id], "contestant": names[g.contestant_id],
                "run_id": run_of(g), "created_at": iso_time(g.created_at)})
            for g in generations
        ],
        "judgments": [
            row("judgments", {
                **_fields(j, SCHEMA["judgments"]), "judgment_id": judgment_ids[j.id],
                "prompt_id": prompt_ids[j.prompt_id], "generation1_id": gen_ids[j.generation1_id],
                "generation2_id": gen_ids[j.generation2_id], "model_1": gen_model[j.generation1_id],
                "model_2": gen_model[j.generation2_id], "judge": judge_name(j.judge),
                "run_id": run_of(j), "created_at": iso_time(j.created_at)})
            for j in judgments
        ],
        "tags": [
            row("tags", {"tag_id": stable_id("tag", judgment_ids[t.judgment_id], annotator(t.annotator), t.tag),
                         "judgment_id": judgment_ids[t.judgment_id], "annotator": annotator(t.annotator),
                         "tag": t.tag, "note": t.note, "created_at": iso_time(t.created_at)})
            for t in tags
        ],
    }  # fmt: skip
    if config.benchmark:
        used_runs = {r["run_id"] for t in ("generations", "judgments") for r in rows[t]}
        rows["runs"] = [r for r in rows["runs"] if r["run_id"] in used_runs]
    for table, keys in SORT_KEYS.items():
        rows[table].sort(key=lambda r, keys=keys: tuple("" if r[k] is None else str(r[k]) for k in keys))
    return rows


def _fields(record: Any, columns: Iterable[Column]) -> dict[str, Any]:
    """The record's values of those columns that the store table has."""
    values = record._mapping
    return {c.name: values[c.name] for c in columns if c.name in values}
