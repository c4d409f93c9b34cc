"""The CLI's error paths: an error the user can cause ends in one `error:` line and a non-zero
exit, the traceback only with `-v`; commands that only read never create a store."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select

from arena.cli import main
from arena.models import add_api
from arena.store import Run, Store
from tests.arena_seed import seed_arena

READ_ONLY = [
    ["leaderboard"],
    ["analyze", "bias"],
    ["analyze", "length"],
    ["models", "list"],
    ["release", "--out", "bundle"],
    ["mt-bench", "show"],
    ["db", "current"],
]


def one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """The command failed with one `error:` line on stderr and no traceback; returns the line."""
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c[:2]))
def test_read_only_commands_never_create_a_store(
    command: list[str], tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    line = one_error_line(capsys, main([*command, "--db", "sqlite:///missing.db"]))
    assert "no guanaco store at missing.db" in line and "--db" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_empty_database_is_no_store_and_stays_empty(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    line = one_error_line(capsys, main(["leaderboard", "--db", f"sqlite:///{empty}"]))
    assert "no guanaco store" in line
    with sqlite3.connect(empty) as connection:  # no schema was written into it
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.mark.parametrize(
    ("db", "said"),
    [
        ("nonsense", "--db cannot be opened"),
        ("mysql://ann@db.example/arena", "No module named"),
        ("sqlite:///{tmp}/no-such-folder/arena.db", "check that its folder exists"),
        ("postgresql+psycopg://ann:pw-secret@127.0.0.1:{port}/arena", "the database server is running"),
    ],
    ids=["unparsable", "unknown-driver", "no-folder", "no-server"],
)
def test_a_store_that_cannot_be_opened_is_one_line_without_its_password(
    db: str, said: str, tmp_path: Path, capsys
) -> None:
    port = closed_port_url().split(":")[2].split("/")[0]
    url = db.format(tmp=tmp_path, port=port)
    line = one_error_line(capsys, main(["models", "add", "m", "--base", "b", "--db", url]))
    assert said in line and "pw-secret" not in line


def test_judge_without_an_api_key_says_which_variable(tmp_path: Path, monkeypatch, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    store = Store(url)
    seed_arena(store, payload=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["judge", "--db", url, "--benchmark", "vicuna", "--models", "alpha,beta"])
    line = one_error_line(capsys, code)
    assert "OPENAI_API_KEY" in line and "--base-url" in line
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0  # no run was recorded


def test_verbose_shows_the_traceback_before_the_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard", "-v", "--db", "sqlite:///missing.db"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "StoreNotFound" in err
    assert err.strip().splitlines()[-1].startswith("error: no guanaco store")


@pytest.mark.parametrize(
    "command",
    [
        ["leaderboard", "--k", "abc"],
        ["leaderboard", "--method", "nope"],
        ["judge", "--benchmark", "vicuna"],
        ["analyze", "bias", "--bootstrap", "many"],
        ["leaderboard", "--no-such-flag"],
    ],
    ids=["float", "choice", "required", "int", "unknown"],
)
def test_a_bad_flag_is_one_line_naming_the_help(command: list[str], tmp_path: Path, capsys) -> None:
    line = one_error_line(capsys, main([*command, "--db", f"sqlite:///{tmp_path / 'a.db'}"]))
    assert "--help" in line
    assert not (tmp_path / "a.db").exists()


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["import", "fastchat", "nope.jsonl", "--benchmark", "mt-bench"], "nope.jsonl: no such file"),
        (["import", "qlora-release", "no-release"], "no-release: no such file or folder"),
        (
            ["judge", "--benchmark", "vicuna", "--models", "alpha,beta", "--template", "nope.yaml"],
            "nope.yaml",
        ),
        (["judge", "--benchmark", "vicuna", "--models", "alpha,beta", "--costs", "nope.json"], "nope.json"),
        (["load-release", "nodir"], "nodir"),
    ],
    ids=["fastchat", "qlora", "template", "costs", "bundle"],
)
def test_a_missing_input_file_is_named(
    command: list[str], named: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert named in one_error_line(capsys, main([*command, "--db", "sqlite:///arena.db"]))
    if command[0] == "import":
        assert not (tmp_path / "arena.db").exists()  # a mistyped path creates no store


def test_train_offline_with_a_hub_model_says_what_to_do(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--preset", "guanaco-7b", "--db", "sqlite:///arena.db", "--max-steps", "1"])
    line = one_error_line(capsys, code)
    assert "huggyllama/llama-7b" in line and "local folder" in line


def test_python_m_trainer_offline_says_the_same(tmp_path: Path, monkeypatch, capsys) -> None:
    from trainer.__main__ import main as trainer_main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    line = one_error_line(capsys, trainer_main(["--preset", "guanaco-7b", "--max-steps", "1"]))
    assert "huggyllama/llama-7b" in line and "local folder" in line


def test_generate_offline_with_a_hub_model_says_what_to_do(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    seed_arena(Store(url), prompts=1, payload=False)
    assert main(["models", "add", "far", "--base", "nobody/not-cached", "--db", url]) == 0
    capsys.readouterr()
    code = main(["generate", "--benchmark", "vicuna", "--models", "far", "--db", url])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("error: cannot load the base model of 'far' 'nobody/not-cached'")
    )


def closed_port_url() -> str:
    """An OpenAI-compatible URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


@pytest.mark.parametrize("command", ["judge", "generate"])
def test_an_unreachable_endpoint_ends_the_run_with_one_line(
    command: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    # every attempt is still made, over real HTTP, without the waits between them
    monkeypatch.setattr("judges.client.backoff_seconds", lambda cfg, attempt, error: 0.0)
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    store = Store(url)
    seed_arena(store, prompts=1, payload=False)
    endpoint = closed_port_url()
    if command == "judge":
        argv = ["judge", "--benchmark", "vicuna", "--models", "alpha,beta", "--base-url", endpoint]
    else:
        with store.session() as session:
            add_api(session, "remote", "some-model", base_url=endpoint)
        argv = ["generate", "--benchmark", "vicuna", "--models", "remote"]
    assert main([*argv, "--db", url]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("error: ") and "run the same command" in last and "Traceback" not in err
