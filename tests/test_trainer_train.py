"""The training loop on a tiny 4-bit Llama: loss falls, outputs are complete, resume is exact; configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.tiny_model import CPU_PATHS, force_bnb_cpu_path
from tests.trainer_tiny import tiny_checkpoint
from trainer.batches import epoch_batches
from trainer.config import ConfigError, TrainConfig, build
from trainer.train import Loop, TrainError, train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


FAST = [
    "--preset",
    "smoke",
    "--max-seq-len",
    "64",
    "--batch-size",
    "2",
    "--grad-accum",
    "2",
    "--max-eval-samples",
    "4",
]


def test_guanaco_train_lowers_the_loss_and_writes_a_complete_run(
    tiny: Path, tmp_path: Path, db_url: str
) -> None:
    from arena.cli import main
    from arena.store import Run, Store

    out = tmp_path / "run"
    argv = ["train", "--db", db_url, *FAST, "--base", str(tiny), "--out", str(out), "--max-steps", "12",
            "--learning-rate", "0.01", "--eval-steps", "4", "--save-steps", "4"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    losses = [row["loss"] for row in metrics["history"]]
    assert [row["step"] for row in metrics["history"]] == list(range(1, 13))
    # batches differ step to step, so compare a third of the run at each end (from ln(260) = 5.56)
    assert sum(losses[-4:]) < sum(losses[:4]) - 0.4
    evals = [row["eval_loss"] for row in metrics["history"] if "eval_loss" in row]
    assert len(evals) == 3 and evals[-1] < evals[0]
    assert metrics["data"]["train"]["skipped"] == {"deleted": 1, "spam": 1}
    assert metrics["data"]["train"]["trimmed"] == 1  # a sample tree whose best path ends on a question
    assert metrics["data"]["train"]["truncated"] > 0  # 64 tokens of bytes cut most sample conversations
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "config.yaml",
        "README.md",
    ):
        assert (out / name).is_file(), name
    saved = build(config_file=out / "config.yaml")
    assert saved == build("smoke", overrides={"base": str(tiny), "out": str(out), "max_seq_len": 64, "batch_size": 2,
                                              "grad_accum": 2, "max_eval_samples": 4, "max_steps": 12, "learning_rate": 0.01,
                                              "eval_steps": 4, "save_steps": 4})  # fmt: skip
    card = (out / "README.md").read_text()
    assert (
        "held-out loss" in card and "loss on all tokens, EOS once at the end" in card
    )  # auto: OASST1 sample
    with Store(db_url).session() as session:
        run = session.query(Run).one()
        assert (run.kind, run.status, run.config["lora_r"]) == ("train", "done", 8)
    assert main([*argv[:3], *argv[3:]]) == 2  # the same --out again without --resume is refused


def state_tensors(checkpoint: Path) -> tuple[dict, dict, int]:
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=True)
    return load_file(checkpoint / "adapter_model.safetensors"), state["optimizer"]["state"], state["step"]


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert_same(a[key], b[key])
        elif isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("cpu", CPU_PATHS)
def test_resume_with_evaluation_continues_bit_exact_on_a_cpu_that_is(
    cpu: str, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer.__main__ import main

    force_bnb_cpu_path(monkeypatch, cpu)  # evaluation every 2 steps: bitsandbytes would repack there
    common = [*FAST, "--base", str(tiny), "--lora-dropout", "0.2", "--eval-steps", "2", "--save-steps", "2"]
    assert (
        main([*common, "--out", str(tmp_path / "straight"), "--max-steps", "4", "--report-to", "tensorboard"])
        == 0
    )
    assert list((tmp_path / "straight").rglob("events.out.tfevents.*"))
    assert main([*common, "--out", str(tmp_path / "stopped"), "--max-steps", "2"]) == 0

    cfg = build(config_file=tmp_path / "stopped" / "config.yaml", overrides={"max_steps": 4})
    loop = Loop(cfg, resume=True)
    assert loop.accelerator.mixed_precision == "no"  # no bf16 on the CPU
    assert loop.step == 2
    adapter, optimizer_state, _ = state_tensors(tmp_path / "stopped" / "checkpoint-2")
    assert_same(loop.optimizer.state_dict()["state"], optimizer_state)
    del loop

    assert main(["--resume", str(tmp_path / "stopped"), "--max-steps", "4"]) == 0
    straight = state_tensors(tmp_path / "straight" / "checkpoint-4")
    resumed = state_tensors(tmp_path / "stopped" / "checkpoint-4")
    assert resumed[2] == straight[2] == 4
    assert_same(resumed[0], straight[0])
    assert_same(resumed[1], straight[1])
    history = [
        json.loads((tmp_path / run / "metrics.json").read_text())["history"]
        for run in ("straight", "stopped")
    ]
    assert [r["step"] for r in history[1]] == [1, 2, 3, 4]
    assert [r["loss"] for r in history[1]] == [r["loss"] for r in history[0]]


def test_every_rng_state_round_trips_through_a_tensors_only_file(tmp_path: Path) -> None:
    import random

    import numpy as np

    from trainer.train import load_state, rng_state, set_rng_state

    def draws() -> tuple:
        return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()

    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = draws()
    set_rng_state(load_state(tmp_path / "rng.pt"))
    assert draws() == expected


class RunsCode:
    """Unpickling this touches a file: what a hostile checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("file", ["trainer_state.pt", "rng-0.pt"])
def test_a_checkpoint_that_would_run_code_is_refused_unopened(file: str, tiny: Path, tmp_path: Path) -> None:
    from trainer.__main__ import main

    out = tmp_path / "run"
    assert main([*FAST, "--base", str(tiny), "--out", str(out), "--max-steps", "1", "--save-steps", "1"]) == 0
    state = torch.load(out / "checkpoint-1" / file, weights_only=True)
    marker = tmp_path / "ran"
    torch.save({**state, "extra": RunsCode(marker)}, out / "checkpoint-1" / file)
    cfg = build(config_file=out / "config.yaml", overrides={"max_steps": 2})
    with pytest.raises(
        TrainError, match=rf"checkpoint-1/{file}: not a checkpoint this trainer wrote.*Unsupported global"
    ):
        Loop(cfg, resume=True)
    assert not marker.exists()


def test_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    cfg = build("smoke", overrides={"out": str(tmp_path)})
    with pytest.raises(TrainError, match="no checkpoint-N folder"):
        train(cfg, resume=True)


def test_yaml_config_presets_and_flag_overrides(tmp_path: Path) -> None:
    import argparse

    from trainer.config import add_arguments, from_args

    mine = tmp_path / "my.yaml"
    mine.write_text("preset: guanaco-7b\nlora_r: 32\nlearning_rate: 0.0001\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = from_args(parser.parse_args(["--config", str(mine), "--lora-r", "16", "--target-modules", "q_proj,v_proj",
                                       "--no-group-by-length"]))  # fmt: skip
    assert (cfg.lora_r, cfg.target_modules, cfg.learning_rate) == (16, ["q_proj", "v_proj"], 1e-4)
    assert (cfg.lora_dropout, cfg.lora_alpha, cfg.max_steps, cfg.base) == (
        0.1,
        16.0,
        1875,
        "huggyllama/llama-7b",
    )
    assert cfg.group_by_length is False
    paper = {name: build(name) for name in ("guanaco-7b", "guanaco-13b", "guanaco-33b", "guanaco-65b")}
    assert [(c.lora_dropout, c.learning_rate) for c in paper.values()] == [
        (0.1, 2e-4),
        (0.05, 2e-4),
        (0.05, 1e-4),
        (0.05, 1e-4),
    ]
    assert {(c.lora_r, c.lora_alpha, c.batch_size, c.grad_accum, c.max_steps, c.lr_scheduler, c.max_grad_norm,
             c.adam_beta2, c.optim, c.group_by_length, c.double_quant, c.quant_type) for c in paper.values()} == {
        (64, 16.0, 1, 16, 1875, "constant", 0.3, 0.999, "paged_adamw_32bit", True, True, "nf4")}  # fmt: skip
    # the paper's data, with qlora.py's loss placement and a single EOS at the end of each text
    assert {(c.data, c.train_on, c.eos) for c in paper.values()} == {("guanaco", "auto", "end")}
    mine.write_text("lora_r: 8\nlora_rank: 4\n")
    with pytest.raises(ConfigError, match=r"my\.yaml, line 2: unknown field 'lora_rank'"):
        build(config_file=mine)
    with pytest.raises(ConfigError, match="field train_on: 'prompts' is not one of auto, all, assistant"):
        TrainConfig(train_on="prompts")


def test_length_grouping_is_deterministic_complete_and_pads_less() -> None:
    lengths = [(i * 37) % 200 + 5 for i in range(400)]
    grouped = epoch_batches(lengths, 8, seed=3, epoch=1, group_by_length=True)
    assert grouped == epoch_batches(lengths, 8, seed=3, epoch=1, group_by_length=True)
    assert grouped != epoch_batches(lengths, 8, seed=3, epoch=2, group_by_length=True)
    assert sorted(i for batch in grouped for i in batch) == list(range(400))
    assert max(lengths[i] for i in grouped[0]) == max(lengths)

    def padding(batches: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(grouped) < 0.2 * padding(epoch_batches(lengths, 8, seed=3, epoch=1, group_by_length=False))


@pytest.mark.slow
def test_a_short_run_on_four_bit_smollm2(tmp_path: Path) -> None:
    cfg = build("smoke", overrides={"out": str(tmp_path / "smoke"), "max_steps": 2, "max_seq_len": 64, "eval_steps": 2,
                                    "save_steps": 2, "max_eval_samples": 1, "batch_size": 1, "grad_accum": 1})  # fmt: skip
    metrics = train(cfg)
    assert metrics["step"] == 2 and 0 < metrics["train_loss"] < 20 and 0 < metrics["eval_loss"] < 20
    assert metrics["model"]["quantized_layers"] == 30 * 7
    assert metrics["model"]["bits_per_weight_measured"] == pytest.approx(4.127, abs=0.01)
    assert yaml.safe_load((tmp_path / "smoke" / "config.yaml").read_text())["base"] == "smollm2"
    assert (tmp_path / "smoke" / "adapter_model.safetensors").is_file()
