"""The release bundle's data card (README.md).

The card is written from the exported rows only, so it describes exactly what is in the bundle:
schema, counts, how every judgment and generation was made, the sources' licences (from the
benchmark registry ``data/sources.*``), the leaderboards (:mod:`.leaderboards`) with the
parameters that made them, and the sha256 of every file. It carries no export-time timestamp (the
newest record's time stands in), so exporting the same store twice gives the same card.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from arena.leaderboard import render
from arena.release.config import ReleaseConfig
from arena.release.schema import BATTLES, CHECKSUMS, SCHEMA
from foundations.paths import DATA_DIR


def load_sources() -> list[dict[str, Any]]:
    """The benchmark registry's files (data/sources.json: `files` keyed by mirror path), or none."""
    path = DATA_DIR / "sources.json"
    if not path.is_file():
        return []
    files = json.loads(path.read_text(encoding="utf-8")).get("files", {})
    return [
        {"file": name, "url": entry.get("url"), "license": entry.get("license")}
        for name, entry in sorted(files.items())
    ]


def record_sources(rows: dict[str, list[dict[str, Any]]]) -> set[str]:
    """Every source file the exported records name (prompts' `source`, metadata `source` fields)."""
    found = {p["source"] for p in rows["prompts"] if p["source"]}
    for table in ("contestants", "generations", "judgments"):
        for row in rows[table]:
            value = (row["meta"] or {}).get("source")
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    found.add(item)
    return found


def licences(rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Registry entries from the releases the records came from (matched by the top folder,
    `qlora-eval/` or `fastchat/`, of the source paths they name)."""
    tops = {source.split("/", 1)[0] for source in record_sources(rows)}
    return [entry for entry in load_sources() if entry["file"].split("/", 1)[0] in tops]


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _params_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else ""


def write_card(
    path: Path,
    rows: dict[str, list[dict[str, Any]]],
    config: ReleaseConfig,
    checksums: dict[str, str],
    boards: dict[str, pd.DataFrame],
) -> None:
    times = [r["created_at"] for t in ("contestants", "generations", "judgments", "tags") for r in rows[t]]
    benchmarks = Counter(r["prompt_id"].split("/", 1)[0] for r in rows["prompts"])
    lines = [
        "# guanaco-arena release",
        "",
        "Every prompt, contestant, generation, judgment (GPT-4 and other model judges, and people's votes "
        "as judges `human:<annotator>`) and tag of a guanaco-arena store, one row per record, linked by "
        "stable ids derived from natural keys. Exported by `guanaco release`; read back with "
        "`guanaco load-release DIR`.",
        "",
        f"- Benchmarks: {', '.join(f'{b} ({n} prompts)' for b, n in sorted(benchmarks.items()))}",
        f"- Newest record: {max(times) if times else 'none'} (UTC)",
        f"- Annotators pseudonymised: {'yes (annotator-<16 hex of HMAC-SHA256(a key kept outside this bundle, name)>)' if config.pseudonymise else 'no: real names (--real-names)'}",
        "- Secrets: keys named like api_key, authorization, token, password, secret are replaced by "
        "`[redacted]` in every config and metadata field, and key-shaped strings in every text; URLs "
        "carry no user name or password (nor, outside prompts, answers and judges' reasons, a query); "
        "absolute paths there keep only their file's name.",
        f"- Formats: {', '.join(config.formats)}; nested fields are JSON (JSON text in Parquet).",
        f"- `{BATTLES}`: FastChat `clean_battle` format (model_a, model_b, winner, judge, question_id, "
        "turn, anony, tstamp) for their Elo notebooks; `tstamp` is the judgment's time.",
        "",
        "## Counts",
        "",
        *_md_table(["table", "rows"], [[t, len(r)] for t, r in rows.items()]),
        "## How the judgments were made",
        "",
    ]
    runs = {r["run_id"]: r for r in rows["runs"]}
    made = Counter(
        (j["judge"], j["template_id"], j["template_hash"], j["status"], j["run_id"])
        for j in rows["judgments"]
    )
    lines += _md_table(
        ["judge", "template", "template sha256", "status", "judgments", "run", "run config"],
        [[judge, tid, thash, status, n, runs[run]["name"] if run in runs else "", _params_text(runs.get(run, {}).get("config"))]
         for (judge, tid, thash, status, run), n in sorted(made.items(), key=lambda kv: tuple(map(str, kv[0])))],
    )  # fmt: skip
    lines += ["## How the generations were made", ""]
    gens = Counter(
        (g["contestant"], g["backend"], _params_text(g["params"]), g["seed"]) for g in rows["generations"]
    )
    lines += _md_table(
        ["contestant", "backend", "sampling parameters", "seed", "generations"],
        [[*key, n] for key, n in sorted(gens.items(), key=lambda kv: tuple(map(str, kv[0])))],
    )
    lines += ["## Sources and licences", ""]
    prompt_sources = Counter((p["benchmark"], p["source"], p["source_sha256"]) for p in rows["prompts"])
    lines += _md_table(
        ["benchmark", "source file", "sha256", "prompts"],
        [[*key, n] for key, n in sorted(prompt_sources.items(), key=lambda kv: tuple(map(str, kv[0])))],
    )
    sources = licences(rows)
    if sources:
        lines += _md_table(
            ["registry file", "url", "licence"], [[s["file"], s["url"], s["license"]] for s in sources]
        )
    else:
        lines += [
            "No source named by these records is in the benchmark registry (data/sources.json): "
            "licences are not recorded here.",
            "",
        ]
    lines += ["## Leaderboards this bundle reproduces", ""]
    if not boards:
        lines += ["No pairwise judgments, so no leaderboards.", ""]
    for name, board in boards.items():
        lines += [f"### {name}", "", f"`leaderboards/{name}.csv`", "", render(board, "md"), ""]
    lines += ["## Schema", ""]
    for table, columns in SCHEMA.items():
        lines += [f"### {table}", ""]
        lines += _md_table(["column", "type", "meaning"], [[c.name, c.kind, c.doc] for c in columns])
    lines += [
        "## Files and sha256",
        "",
        f"`{CHECKSUMS}` lists the same (and this card's), for `sha256sum -c`.",
        "",
    ]
    lines += _md_table(["file", "sha256"], [[f"`{n}`", d] for n, d in sorted(checksums.items())])
    path.write_text("\n".join(lines), encoding="utf-8")
