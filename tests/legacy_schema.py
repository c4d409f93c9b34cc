"""A store as guanaco-arena 0.1 wrote it (before migrations): its SQLite DDL, verbatim from
`sqlite_master` (whitespace aside), and a few rows, so the upgrade test starts from the real
previous schema rather than from the project's own baseline migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

SQLITE_DDL = """
CREATE TABLE runs (
    id INTEGER NOT NULL,
    kind VARCHAR(32) NOT NULL,
    name VARCHAR(200) NOT NULL,
    config JSON NOT NULL,
    status VARCHAR(16) NOT NULL,
    started_at DATETIME NOT NULL,
    finished_at DATETIME,
    PRIMARY KEY (id)
);
CREATE TABLE prompts (
    id INTEGER NOT NULL,
    benchmark VARCHAR(64) NOT NULL,
    "key" VARCHAR(128) NOT NULL,
    category VARCHAR(64),
    turns JSON NOT NULL,
    context JSON NOT NULL,
    reference JSON,
    source VARCHAR(500),
    source_sha256 VARCHAR(64),
    meta JSON NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_prompt UNIQUE (benchmark, "key")
);
CREATE INDEX ix_prompts_benchmark ON prompts (benchmark);
CREATE TABLE contestants (
    id INTEGER NOT NULL,
    name VARCHAR(200) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    base_model VARCHAR(500),
    adapter VARCHAR(500),
    quantization VARCHAR(32),
    api_model VARCHAR(200),
    meta JSON NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (name)
);
CREATE TABLE generations (
    id INTEGER NOT NULL,
    prompt_id INTEGER NOT NULL,
    contestant_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    turn_texts JSON,
    raw_text TEXT,
    prompt_sent TEXT,
    params JSON NOT NULL,
    seed INTEGER,
    backend VARCHAR(32),
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    seconds FLOAT,
    external_id VARCHAR(200),
    run_id INTEGER,
    meta JSON NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_generation UNIQUE (prompt_id, contestant_id),
    FOREIGN KEY(prompt_id) REFERENCES prompts (id),
    FOREIGN KEY(contestant_id) REFERENCES contestants (id),
    FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE INDEX ix_generations_prompt_id ON generations (prompt_id);
CREATE INDEX ix_generations_external_id ON generations (external_id);
CREATE INDEX ix_generations_contestant_id ON generations (contestant_id);
CREATE TABLE judgments (
    id INTEGER NOT NULL,
    judge VARCHAR(200) NOT NULL,
    template_id VARCHAR(200) NOT NULL,
    template_hash VARCHAR(64) NOT NULL,
    prompt_id INTEGER NOT NULL,
    generation1_id INTEGER NOT NULL,
    generation2_id INTEGER NOT NULL,
    verdict VARCHAR(16),
    score1 FLOAT,
    score2 FLOAT,
    status VARCHAR(16) NOT NULL,
    raw TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cost_usd FLOAT,
    external_id VARCHAR(200),
    run_id INTEGER,
    meta JSON NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_judgment UNIQUE (judge, template_hash, generation1_id, generation2_id),
    FOREIGN KEY(prompt_id) REFERENCES prompts (id),
    FOREIGN KEY(generation1_id) REFERENCES generations (id),
    FOREIGN KEY(generation2_id) REFERENCES generations (id),
    FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE INDEX ix_judgments_generation2_id ON judgments (generation2_id);
CREATE INDEX ix_judgments_judge ON judgments (judge);
CREATE INDEX ix_judgments_prompt_id ON judgments (prompt_id);
CREATE INDEX ix_judgments_generation1_id ON judgments (generation1_id);
CREATE TABLE tags (
    id INTEGER NOT NULL,
    judgment_id INTEGER NOT NULL,
    annotator VARCHAR(200) NOT NULL,
    tag VARCHAR(32) NOT NULL,
    note TEXT,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_tag UNIQUE (judgment_id, annotator, tag),
    FOREIGN KEY(judgment_id) REFERENCES judgments (id)
);
CREATE INDEX ix_tags_judgment_id ON tags (judgment_id);
"""


def make_legacy_sqlite(path: Path) -> None:
    """A 0.1 store with one prompt, two answers, one judgment and one run."""
    with sqlite3.connect(path) as db:
        db.executescript(SQLITE_DDL)
        now = "2024-05-01 12:00:00.000000"
        db.execute(
            "INSERT INTO runs (id, kind, name, config, status, started_at) VALUES (1, 'judge', 'old', ?, 'done', ?)",
            (json.dumps({"judge_model": "gpt-4"}), now),
        )
        db.execute(
            "INSERT INTO prompts (id, benchmark, key, turns, context, meta) VALUES (1, 'vicuna', '1', ?, '[]', '{}')",
            (json.dumps(["Hi?"]),),
        )
        for cid, name in ((1, "a"), (2, "b")):
            db.execute(
                "INSERT INTO contestants (id, name, kind, meta, created_at) VALUES (?, ?, 'local', '{}', ?)",
                (cid, name, now),
            )
            db.execute(
                "INSERT INTO generations (id, prompt_id, contestant_id, text, params, meta, created_at) "
                "VALUES (?, 1, ?, ?, '{}', '{}', ?)",
                (cid, cid, f"answer {name}", now),
            )
        db.execute(
            "INSERT INTO judgments (id, judge, template_id, template_hash, prompt_id, generation1_id, "
            "generation2_id, verdict, status, cost_usd, run_id, meta, created_at) "
            "VALUES (1, 'gpt-4', 't', 'h', 1, 1, 2, '1', 'ok', 0.02, 1, '{}', ?)",
            (now,),
        )
