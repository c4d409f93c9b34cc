"""Leaderboards in every format, the plots, and `guanaco leaderboard` end to end on a temporary store."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from arena import leaderboard
from arena.cli import main
from arena.elo import elo_ratings, online_elo
from arena.store import Store
from tests.handmade import make_placeholders
from tests.ratings_data import frame, simulated, store_judgments

SNEAKY = "<b>sneaky | model</b>"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    battles = frame(
        simulated({"alpha": 1.0, SNEAKY: 0.4, "gamma": 0.0}, 240) + [("q1", "alpha", "gamma", None)]
    )
    return elo_ratings(battles, orderings=100)


def test_text_and_markdown_carry_the_header_and_every_model(table: pd.DataFrame) -> None:
    text = leaderboard.render(table, "table")
    for line in ("benchmark: vicuna", "judge: gpt-4", "method: elo", "orderings=100", "judgments rated: 240",
                 "unparsed or errored (excluded): 1"):  # fmt: skip
        assert line in text
    md = leaderboard.render(table, "md")
    assert "- **unparsed or errored (excluded)**: 1" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(table)  # the column row, then one per model
    assert all(line.count(" | ") == len(table.columns) - 1 for line in rows)  # a '|' in a name is escaped
    assert "&lt;b&gt;sneaky \\| model&lt;/b&gt;" in md  # and no raw HTML gets through


def test_csv_parses_with_pandas_and_keeps_full_precision(table: pd.DataFrame) -> None:
    text = leaderboard.render(table, "csv")
    assert text.startswith("# benchmark: vicuna\n")
    parsed = pd.read_csv(io.StringIO(text), comment="#")
    assert parsed.model.tolist() == table.model.tolist()
    pd.testing.assert_series_equal(parsed.rating, table.rating, check_exact=False, rtol=1e-12)


def test_json_has_header_and_rows(table: pd.DataFrame) -> None:
    document = json.loads(leaderboard.render(table, "json"))
    assert document["header"]["method"] == "elo" and document["header"]["unparsed_excluded"] == 1
    assert [row["model"] for row in document["rows"]] == table.model.tolist()
    assert set(document["rows"][0]) == set(table.columns)


def test_online_elo_json_writes_missing_intervals_as_null() -> None:
    rows = json.loads(leaderboard.render(online_elo(frame([("q1", "a", "b", "1")])), "json"))["rows"]
    assert rows[0]["lower"] is None and rows[0]["rating"] == 1016.0


def test_html_is_escaped_and_self_contained(table: pd.DataFrame) -> None:
    page = leaderboard.render(table, "html")
    assert SNEAKY not in page and "&lt;b&gt;sneaky | model&lt;/b&gt;" in page
    assert "<script" not in page and "http" not in page  # no external resources

    class Cells(HTMLParser):
        rows = 0
        tags: list[str] = []

        def handle_starttag(self, tag: str, attrs: list) -> None:
            self.tags.append(tag)
            self.rows += tag == "tr"

    parser = Cells()
    parser.feed(page)
    assert parser.rows == 1 + len(table) and "b" not in parser.tags
    assert "<dt>judge</dt><dd>gpt-4</dd>" in page


def test_unknown_format_is_refused(table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown leaderboard format 'xlsx'"):
        leaderboard.render(table, "xlsx")


def test_plots_are_pngs(table: pd.DataFrame, tmp_path: Path) -> None:
    for path in (leaderboard.plot_ratings(table, tmp_path / "r.png"),
                 leaderboard.plot_win_rates(frame(simulated({"a": 1, "b": 0, "c": 0.5}, 60)), tmp_path / "w.png")):  # fmt: skip
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = matplotlib.image.imread(path).shape
        assert height > 200 and width > 200


def arena_store(store: Store) -> None:
    """Two GPT-4-judged prompts and one human vote among three models, plus one unparsed verdict."""
    store_judgments(store, [
        {"prompt_key": "q1", "model_1": "guanaco-7b", "model_2": "gpt-4", "verdict": "2"},
        {"prompt_key": "q1", "model_1": "gpt-4", "model_2": "guanaco-7b", "verdict": "1"},
        {"prompt_key": "q2", "model_1": "guanaco-7b", "model_2": "gpt-4", "verdict": "tie"},
        {"prompt_key": "q2", "model_1": "gpt-4", "model_2": "bard", "verdict": "1"},
        {"prompt_key": "q2", "model_1": "bard", "model_2": "guanaco-7b", "verdict": None},
        {"prompt_key": "q1", "model_1": "bard", "model_2": "gpt-4", "verdict": "1", "judge": "human:ann"},
        {"prompt_key": "q2", "model_1": "bard", "model_2": "gpt-4", "verdict": "1", "judge": "human:bob"},
    ])  # fmt: skip


def test_style_control_never_measures_a_placeholder(store: Store, db_url: str, capsys) -> None:
    arena_store(store)
    make_placeholders(store, [("q2", "bard")])  # its judgment against gpt-4 cannot be measured
    base = ["leaderboard", "--db", db_url, "--judge", "gpt-4", "--method", "bt", "--bootstrap", "20"]
    assert main([*base, "--control", "length", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["header"]["used"] == 3
    assert "style control leaves out 2 judgments" in captured.err  # the unparsed one involves bard too


def test_cli_end_to_end_on_a_temporary_database(store: Store, db_url: str, tmp_path: Path, capsys) -> None:
    arena_store(store)
    out, plot, heat = tmp_path / "lb.json", tmp_path / "elo.png", tmp_path / "heat.png"
    code = main(["leaderboard", "--db", db_url, "--benchmark", "vicuna", "--judge", "gpt-4", "--method", "elo",
                 "--orderings", "50", "--format", "json", "--out", str(out), "--plot", str(plot),
                 "--heatmap", str(heat)])  # fmt: skip
    assert code == 0
    document = json.loads(out.read_text())
    assert document["header"]["unparsed_excluded"] == 1 and document["header"]["used"] == 4
    assert document["rows"][0]["model"] == "gpt-4"
    assert plot.read_bytes()[:4] == heat.read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().err

    assert (
        main(["leaderboard", "--db", db_url, "--judge", "human", "--method", "bt", "--bootstrap", "20"]) == 0
    )
    printed = capsys.readouterr().out
    assert "judgments rated: 2" in printed and "human:ann, human:bob" in printed
    assert printed.split("\n\n")[1].splitlines()[1].split()[0] == "bard"  # humans preferred bard both times


def test_cli_style_control_shows_both_rankings_and_the_coefficients(
    store: Store, db_url: str, capsys
) -> None:
    arena_store(store)
    base = ["leaderboard", "--db", db_url, "--judge", "gpt-4", "--method", "bt", "--bootstrap", "20"]
    assert main([*base, "--control", "length", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "rank_uncontrolled" in md.splitlines()[md.splitlines().index("") + 1]
    assert "Style coefficients (95% interval)" in md and "| length |" in md
    assert "**parameters**: " in md and "control=length" in md
    assert main([*base, "--control", "length", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (
        document["coefficients"][0]["feature"] == "length"
        and "contextual" in document["header"]["style_control"]
    )
    assert main([*base, "--control", "length", "--format", "csv"]) == 0
    assert "# style coefficient length: " in capsys.readouterr().out
    assert main([*base[:-4], "--method", "elo", "--control", "length"]) == 2
    assert "--control works with --method bt" in capsys.readouterr().err
    assert main([*base, "--control", "emoji"]) == 2
    assert "unknown style control emoji" in capsys.readouterr().err


def test_cli_models_filter_and_online_elo(store: Store, db_url: str, capsys) -> None:
    arena_store(store)
    assert main(["leaderboard", "--db", db_url, "--judge", "gpt-4", "--models", "gpt-4,guanaco-7b",
                 "--method", "online-elo", "--format", "csv"]) == 0  # fmt: skip
    parsed = pd.read_csv(io.StringIO(capsys.readouterr().out), comment="#")
    assert sorted(parsed.model) == ["gpt-4", "guanaco-7b"] and parsed.matches.tolist() == [3, 3]


def test_cli_empty_selection_says_what_to_import(store: Store, db_url: str, capsys) -> None:
    arena_store(store)
    assert main(["leaderboard", "--db", db_url, "--benchmark", "mt-bench"]) == 2
    err = capsys.readouterr().err
    assert "no judgments" in err and "benchmark=mt-bench" in err and "guanaco import qlora-release" in err
    assert main(["leaderboard", "--db", db_url, "--method", "relative"]) == 2
    assert "no scored judgments against reference 'gpt-3.5-turbo'" in capsys.readouterr().err
