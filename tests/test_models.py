"""The contestant registry and the embedded SmolLM2 model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from arena.cli import UserError, main
from arena.models import adapter_base, add_api, add_local, contestants, contestants_frame, ensure_smollm2
from arena.store import Contestant


def test_local_api_and_adapter_contestants_are_stored_without_secrets(store, tmp_path, monkeypatch):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "huggyllama/llama-7b"})
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-never-stored")
    with store.session() as session:
        add_local(session, "guanaco-7b", "huggyllama/llama-7b", "timdettmers/guanaco-7b", bits=4)
        add_local(session, "mine", adapter=str(adapter))
        add_api(session, "gpt-4", "gpt-4-0613", base_url="http://127.0.0.1:9/v1")
    with store.session() as session:
        frame = contestants_frame(session).set_index("name")
        rows = [(c.name, c.meta) for c in session.query(Contestant)]
    assert frame.loc["guanaco-7b", "quantization"] == "nf4"
    assert frame.loc["mine", "base_model"] == "huggyllama/llama-7b"
    assert pd.isna(frame.loc["mine", "quantization"])
    assert frame.loc["gpt-4", "kind"] == "api" and frame.loc["gpt-4", "api_model"] == "gpt-4-0613"
    assert "sk-secret" not in repr(rows)
    assert dict(rows)["gpt-4"]["api_key_env"] == "OPENAI_API_KEY"


def test_an_api_base_url_with_credentials_is_refused_not_stored(store):
    with store.session() as session, pytest.raises(UserError, match="never stored"):
        add_api(session, "judge", "gpt-4", base_url="https://ann:pw@api.example/v1")
    with store.session() as session:
        assert session.query(Contestant).count() == 0


def test_a_store_written_by_a_newer_guanaco_is_one_clear_cli_error(tmp_path, capsys):
    from sqlalchemy import create_engine, text

    from arena.store import Store

    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store(url)
    with create_engine(url).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    assert main(["models", "list", "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_adding_again_updates_the_contestant(store):
    with store.session() as session:
        add_local(session, "m", "base-a")
        add_local(session, "m", "base-b", bits=4)
    with store.session() as session:
        (only,) = contestants(session, ["m"])
        assert (only.base_model, only.quantization) == ("base-b", "nf4")


def test_unknown_model_names_what_exists(store):
    with store.session() as session:
        add_local(session, "known", "base")
    with (
        store.session() as session,
        pytest.raises(UserError, match=r"unknown model\(s\): nope.*registered: known"),
    ):
        contestants(session, ["known", "nope"])


def test_bad_adapter_folders_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="adapter_config.json not found"):
        adapter_base(str(tmp_path))
    (tmp_path / "adapter_config.json").write_text('{"r": 8,\n oops}')
    with pytest.raises(UserError, match=r"adapter_config.json, line 2"):
        adapter_base(str(tmp_path))
    (tmp_path / "adapter_config.json").write_text('{"r": 8}')
    with pytest.raises(UserError, match="base_model_name_or_path is missing"):
        adapter_base(str(tmp_path))


def test_cli_add_and_list(db_url, capsys):
    assert main(["models", "add", "g7", "--base", "huggyllama/llama-7b", "--bits", "4", "--db", db_url]) == 0
    assert main(["models", "add", "gpt", "--api", "openai", "--model", "gpt-4-0613", "--db", db_url]) == 0
    assert main(["models", "add", "bad", "--api", "openai", "--db", db_url]) == 2
    assert "--api needs --model" in capsys.readouterr().err
    assert main(["models", "list", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "g7" in out and "nf4" in out and "gpt-4-0613" in out and "bad" not in out


@pytest.mark.slow
def test_pull_smollm2_converts_once_and_registers(db_url, capsys):
    path = ensure_smollm2()
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()
    assert json.loads((path / "config.json").read_text())["model_type"] == "llama"
    assert ensure_smollm2() == path  # cached: no second conversion
    assert main(["models", "pull", "smollm2", "--db", db_url]) == 0
    assert main(["models", "list", "--db", db_url]) == 0
    assert str(path) in capsys.readouterr().out


def test_local_folders_are_stored_as_absolute_paths(store, tmp_path, monkeypatch):
    adapter = tmp_path / "runs" / "mine"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    monkeypatch.chdir(tmp_path)
    with store.session() as session:
        contestant = add_local(session, "mine", adapter="runs/mine", bits=4)
        assert contestant.adapter == str(adapter) and contestant.base_model == "org/base"


def test_int8_base_is_not_mistaken_for_a_group_wise_integer_model():
    from arena.models import is_low_bit

    assert is_low_bit("int4-g32") and is_low_bit("int2-g128")
    assert not is_low_bit("int8") and not is_low_bit("nf4") and not is_low_bit(None)
