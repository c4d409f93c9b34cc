"""The query layer's shared rules: one judge selector with the same meaning in the leaderboard and
the analyses, on a real store (SQLite, and PostgreSQL when it is set up)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from arena.analysis.judgments import load_judgments
from arena.cli import main
from arena.query.judges import select_judges
from arena.query.judgments import read_judgments
from arena.store import Store
from foundations.errors import UserError
from tests.handmade import add_judgments, both_orders

JUDGES = ["openai:gpt-4-0613", "openai:gpt-4o", "gpt-3.5-turbo", "human:ann", "human:bob"]


def test_the_selector_rule() -> None:
    names = [*JUDGES, "gpt-4-1106-preview"]
    assert select_judges(names, "openai:gpt-4o") == ["openai:gpt-4o"]  # an exact name
    assert select_judges(names, "gpt-4-0613") == ["openai:gpt-4-0613"]  # without its provider
    assert select_judges(names, "family:gpt-4") == ["gpt-4-1106-preview", "openai:gpt-4-0613"]  # never gpt-4o
    assert select_judges(names, "human") == select_judges(names, "human:") == ["human:ann", "human:bob"]
    assert select_judges(names, "openai:") == ["openai:gpt-4-0613", "openai:gpt-4o"]
    assert select_judges(names, "claude") == [] and select_judges(names, "family:claude") == []
    with pytest.raises(UserError, match="'gpt-4' is ambiguous.*family:gpt-4 for all of them"):
        select_judges(names, "gpt-4")  # two judges of the family: one name never mixes them
    assert select_judges(JUDGES, "gpt-4") == ["openai:gpt-4-0613"]  # the one judge of the family


def _store_with_every_judge(store: Store) -> None:
    rows = []
    for n, judge in enumerate(JUDGES):
        rows += both_orders(str(n), "a", "b", judge, "1", "2")
        rows += both_orders(str(n), "b", "c", judge, "1", "tie")
    add_judgments(store, rows)


@pytest.mark.parametrize("spec", ["gpt-4", "family:gpt-4", "openai:", "human", "gpt-3.5-turbo", "gpt-4o"])
def test_leaderboard_and_analysis_select_the_same_judgments(store: Store, spec: str) -> None:
    """What `guanaco leaderboard --judge` reads (the selector in SQL) and what `guanaco analyze
    --judge` reads (the selector over the loaded names) are the same judgments."""
    _store_with_every_judge(store)
    in_sql = read_judgments(store, judge=spec)
    loaded = load_judgments(store, judges=[spec])
    assert len(in_sql) > 0
    assert sorted(in_sql.judgment_id) == sorted(loaded.judgment_id)
    assert set(in_sql.judge) == set(select_judges(JUDGES, spec))


def test_both_commands_take_a_family_member_by_its_short_name(store: Store, db_url: str, capsys) -> None:
    _store_with_every_judge(store)
    args = ["--db", db_url, "--judge", "gpt-4", "--format", "json"]
    assert main(["leaderboard", *args, "--method", "bt", "--bootstrap", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["header"]["judgments"] == 4
    assert main(["analyze", "bias", *args, "--bootstrap", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["position"][0]["judgments"] == 4

    add_judgments(store, both_orders("9", "a", "c", "gpt-4-1106-preview", "1", "2"))
    for command in (["leaderboard", *args], ["analyze", "bias", *args]):
        assert main(command) == 2
        assert "'gpt-4' is ambiguous" in capsys.readouterr().err
    family = ["--db", db_url, "--judge", "family:gpt-4", "--format", "json"]
    assert main(["leaderboard", *family, "--method", "bt", "--bootstrap", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["header"]["judgments"] == 6


SQL_BUILDERS = {"select", "update", "delete", "insert", "text", "func"}
"""What sqlalchemy offers to write a statement with."""
SQL_CALLS = {"execute", "scalars", "scalar", "query"}
"""Session methods that run a statement."""
OWN_SQL = {"store.py"}
"""The schema and the Store, which sets SQLite's pragmas."""


def _sql_in(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [f"imports {a.name}" for a in node.names if a.name in SQL_BUILDERS]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_CALLS
        ):
            found.append(f"calls .{node.func.attr}() on line {node.lineno}")
    return found


def test_sql_is_written_only_in_the_query_layer() -> None:
    root = Path(__file__).resolve().parents[1] / "arena"
    offenders = {}
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name.startswith(("query/", "migrations/")) or name in OWN_SQL:
            continue
        if found := _sql_in(path):
            offenders[name] = found
    assert offenders == {}
