"""Workflow configs: each command's typed config comes from its flags or a YAML file (flags win), a
bad file is one error line naming the file, line and field, and a judging run stores its config
as the allowlisted `asdict(config)`, never a secret given on the command line."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from sqlalchemy import select

from arena.cli import build_parser, main
from arena.generate_config import GenerateConfig
from arena.store import Run, Store
from arena.tournament.config import TournamentConfig
from arena.tournament.run_record import STORED_FIELDS
from foundations.configs import from_args
from tests.judge_helpers import MODELS, fill_store, threeclass_judge
from tests.scripted_server import scripted_server_fixture  # noqa: F401
from trainer.config import from_args as train_from_args


def config_from(command: list[str], cls: type):
    args = build_parser().parse_args(command)
    return from_args(cls, args, args.config)


def test_a_yaml_file_gives_the_fields_and_a_flag_overrides_it(tmp_path: Path) -> None:
    judging = tmp_path / "judge.yaml"
    judging.write_text("benchmark: vicuna\nmodels: [alpha, beta, gamma]\norders: one\nconcurrency: 4\n"
                       "budget_usd: 2.5\ntimeout_s: 30\n")  # fmt: skip
    config = config_from(["judge", "--config", str(judging), "--concurrency", "2"], TournamentConfig)
    assert (config.benchmark, config.models, config.orders) == ("vicuna", ["alpha", "beta", "gamma"], "one")
    assert (config.concurrency, config.budget_usd, config.timeout_s) == (2, 2.5, 30.0)
    assert (config.judge_model, config.judge_name, config.seed) == ("gpt-4", "gpt-4", 0)  # defaults
    flags_only = config_from(["judge", "--benchmark", "vicuna", "--models", "alpha,beta,gamma", "--orders", "one",
                              "--concurrency", "2", "--budget-usd", "2.5", "--timeout", "30"], TournamentConfig)  # fmt: skip
    assert flags_only == config  # a file and the same flags make the same config

    generation = tmp_path / "generate.yaml"
    generation.write_text("benchmark: sample\nmodels: [alpha]\nprompts: my-prompts.jsonl\nlimit: 3\n")
    config = config_from(["generate", "--config", str(generation), "--limit", "5"], GenerateConfig)
    assert (config.models, config.prompts, config.limit) == (["alpha"], Path("my-prompts.jsonl"), 5)
    assert config.params().max_new_tokens == 512

    training = tmp_path / "train.yaml"
    training.write_text("preset: smoke\nlearning_rate: 2e-4\nlora_r: 4\n")  # YAML reads 2e-4 as a string
    train = train_from_args(build_parser().parse_args(["train", "--config", str(training), "--lora-r", "8"]))
    assert (train.learning_rate, train.lora_r, train.preset) == (0.0002, 8, "smoke")


@pytest.mark.parametrize(
    ("command", "text", "said"),
    [
        (["judge"], "benchmark: vicuna\nmodels: [a, b]\nconcurency: 4\n", "line 3: unknown field 'concurency'"),
        (["judge"], "benchmark: vicuna\nmodels: [a, b]\nconcurrency: many\n", "line 3: field concurrency: "),
        (["judge"], "benchmark: vicuna\nmodels: [a, b]\norders: all\n", "line 3: field orders: "),
        (["judge"], "benchmark: vicuna\n", "--models required"),
        (["generate"], "benchmark: vicuna\nmodels: [a]\nlimit: [1, 2]\n", "line 3: field limit: "),
        (["train"], "preset: smoke\nlora_r: many\n", "line 2: field lora_r: "),
        (["sweep", "--dry-run"], "name: s\nprompts: many\n", "line 2: field prompts: "),
        (["judge"], "benchmark: vicuna\nmodels: [a, b\n", "line 3: not valid YAML"),
    ],
    ids=["unknown-field", "not-an-int", "not-a-choice", "missing", "not-an-int-list", "train", "sweep", "yaml"],
)  # fmt: skip
def test_a_bad_config_file_is_one_line_naming_file_line_and_field(
    command: list[str], text: str, said: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code = main([*command, "--config", str(bad), "--db", "sqlite:///arena.db"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and said in line
    assert str(bad) in line or "--models" in line
    assert not (tmp_path / "arena.db").exists()  # refused before a store is opened


def test_the_stored_run_config_is_the_allowlisted_config_without_secrets(
    store: Store, db_url: str, scripted_server, tmp_path: Path
) -> None:
    fill_store(store, prompts=2)
    scripted_server.reply = threeclass_judge
    secret_url = scripted_server.url.replace("http://", "http://ann:planted-pass@")
    prices = tmp_path / "planted-prices.json"
    prices.write_text(json.dumps({"gpt-4": {"prompt": 0.03, "completion": 0.06}}))
    config_file = tmp_path / "judge.yaml"
    config_file.write_text(f"benchmark: vicuna\nmodels: [{', '.join(MODELS)}]\norders: one\n")
    argv = ["judge", "--db", db_url, "--config", str(config_file), "--base-url", secret_url, "--costs", str(prices),
            "--concurrency", "2", "--budget-usd", "5"]  # fmt: skip
    assert main(argv) == 0
    config = config_from(argv, TournamentConfig)
    with store.session() as session:
        (run,) = session.scalars(select(Run)).all()
    fields = asdict(config)
    assert {k: v for k, v in run.config.items() if k in fields} == {
        k: v for k, v in fields.items() if k in STORED_FIELDS
    }
    assert (run.config["concurrency"], run.config["budget_usd"], run.config["orders"]) == (2, 5.0, "one")
    assert run.config["endpoint"] == scripted_server.url and run.config["to_judge"] == 6
    stored = json.dumps(run.config)
    for planted in ("planted-pass", "ann", "planted-prices", str(tmp_path), db_url):
        assert planted not in stored


def test_the_sweep_run_config_keeps_no_credential_or_machine_path(tmp_path: Path) -> None:
    from arena.sweep.config import build_config
    from arena.sweep.workflow import provenance

    prices = tmp_path / "prices.json"
    prices.write_text("{}")
    cfg = build_config(overrides={"base_url": "https://ann:planted-pass@judge.example/v1?token=planted-q",
                                  "costs": str(prices), "out": str(tmp_path / "sweep")})  # fmt: skip
    stored = provenance(cfg)
    assert stored["base_url"] == "https://judge.example/v1" and stored["costs"] == "prices.json"
    assert set(stored) == set(asdict(cfg))  # the config's own fields, nothing from elsewhere
    for planted in ("planted-pass", "planted-q", str(tmp_path)):
        assert planted not in json.dumps(stored)
