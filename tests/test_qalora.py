"""QA-LoRA: the group-wise quantizer, the pooled adapter, training, the zero-point merge and its format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.trainer_tiny import tiny_checkpoint
from trainer import qalora
from trainer.config import ConfigError, TrainConfig, build
from trainer.qalora_format import FormatError, load_quantized, pack, read_meta, unpack

FAST = ["--preset", "smoke", "--max-seq-len", "64", "--batch-size", "2", "--grad-accum", "2",
        "--max-eval-samples", "4", "--method", "qalora", "--bits", "3", "--group-size", "32"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def run(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished INT3 QA-LoRA run on the tiny Llama, through `guanaco train`."""
    from arena.cli import main

    out = tmp_path_factory.mktemp("qalora") / "run"
    db = f"sqlite:///{out.parent / 'arena.db'}"
    argv = ["train", "--db", db, *FAST, "--base", str(tiny), "--out", str(out), "--max-steps", "8",
            "--learning-rate", "0.01", "--eval-steps", "4", "--save-steps", "4"]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_group_quantizer_codes_in_range_error_within_half_a_step(bits: int) -> None:
    torch.manual_seed(bits)
    weight = torch.randn(6, 96) * torch.linspace(0.1, 3, 96)  # groups of very different ranges
    q = qalora.quantize(weight, bits, 32)
    assert q.codes.dtype == torch.uint8 and int(q.codes.max()) <= 2**bits - 1
    assert q.scales.shape == q.zeros.shape == (6, 3)
    assert torch.equal(q.zeros, q.zeros.round())  # integer zero points before any merge
    assert torch.equal(q.scales, q.scales.half().float())  # float16-exact, as saved
    error = (qalora.dequantize(q.codes, q.scales, q.zeros) - weight).abs()
    assert (error <= q.scales.repeat_interleave(32, 1) / 2 + 1e-6).all()


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_packing_round_trips_and_takes_bits_per_code(bits: int) -> None:
    codes = torch.randint(0, 2**bits, (5, 37), dtype=torch.uint8)
    packed = pack(codes, bits)
    assert packed.numel() == -(-codes.numel() * bits // 8)
    assert torch.equal(unpack(packed, bits, (5, 37)), codes)


def test_the_adapter_reads_group_sums_and_folds_exactly_into_the_zero_points() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 8, bias=True)
    layer = qalora.QALoraLinear(qalora.GroupQuantLinear.from_linear(linear, 3, 16), r=4, alpha=8, dropout=0.0)
    assert layer.lora_A.weight.shape == (4, 64 // 16)  # A is (in / group) x r
    nn.init.normal_(layer.lora_B.weight)
    x = torch.randn(3, 5, 64)
    # the paper's pooling is a sum: every channel of a group moves the output by the same weight
    delta = layer.scaling * layer.lora_B.weight @ layer.lora_A.weight
    expected = layer.base(x) + x @ delta.repeat_interleave(16, 1).T
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-5)
        folded = layer.fold()
        assert torch.equal(folded.codes, layer.base.codes) and torch.equal(folded.scales, layer.base.scales)
        assert not torch.equal(folded.zeros, layer.base.zeros)
        assert torch.allclose(folded(x), layer(x), atol=1e-5)


def test_method_bits_and_group_size_are_checked(tmp_path: Path) -> None:
    assert build("smoke", overrides={"method": "qalora", "bits": 2, "group_size": 128}).group_size == 128
    (tmp_path / "qa.yaml").write_text("preset: smoke\nmethod: qalora\nbits: 3\ngroup_size: 64\n")
    cfg = build(config_file=tmp_path / "qa.yaml")
    assert (cfg.method, cfg.bits, cfg.group_size, cfg.lora_r) == ("qalora", 3, 64, 8)
    (tmp_path / "bad.yaml").write_text("method: qalora\nbits: 5\n")
    with pytest.raises(ConfigError, match="field bits: qalora takes 4, 3, 2, not 5"):
        build(config_file=tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="field bits: qlora takes 4, 8, not 3"):
        TrainConfig(bits=3)
    with pytest.raises(ConfigError, match="field bits: qalora takes 4, 3, 2, not 8"):
        TrainConfig(method="qalora", bits=8)
    with pytest.raises(ConfigError, match="field group_size: only --method qalora"):
        TrainConfig(group_size=64)
    with pytest.raises(ConfigError, match="field group_size: 48 is not one of 32, 64, 128"):
        TrainConfig(method="qalora", group_size=48)
    model = nn.Sequential(nn.Linear(96, 8), nn.Linear(8, 8))
    model.get_output_embeddings = lambda: None
    with pytest.raises(qalora.QALoraError, match="layer 1: 8 input channels do not split into groups of 32"):
        qalora.quantize_model(model, 4, 32)


def test_training_lowers_the_loss_and_writes_a_qalora_run(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    losses = [row["loss"] for row in metrics["history"]]
    assert [row["step"] for row in metrics["history"]] == list(range(1, 9))
    assert sum(losses[-3:]) < sum(losses[:3])
    assert metrics["model"]["quantized_layers"] == 2 * 7
    assert metrics["model"]["bits_per_weight"] == pytest.approx(3 + (16 + 32) / 32)
    # LoRA's r x (in + out) per layer shrinks to r x (in / 32 + out): A reads 2 group sums, not 64 channels
    q_o, k_v, gate_up, down = (2 + 64) * 2, (2 + 32) * 2, (2 + 128) * 2, 4 + 64
    assert metrics["model"]["trainable_params"] == 2 * 8 * (q_o + k_v + gate_up + down)
    saved = json.loads((run / qalora.ADAPTER_CONFIG).read_text())
    assert (saved["bits"], saved["group_size"], saved["pooling"]) == (3, 32, "sum")
    assert "INT3 group-wise" in (run / "README.md").read_text()


def test_resume_continues_a_qalora_run_exactly(tiny: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from trainer.__main__ import main

    common = [*FAST, "--base", str(tiny), "--eval-steps", "2", "--save-steps", "2", "--lora-dropout", "0.2"]
    assert main([*common, "--out", str(tmp_path / "straight"), "--max-steps", "4"]) == 0
    assert main([*common, "--out", str(tmp_path / "stopped"), "--max-steps", "2"]) == 0
    assert main(["--resume", str(tmp_path / "stopped"), "--max-steps", "4"]) == 0
    straight, resumed = (
        load_file(tmp_path / r / "checkpoint-4" / qalora.ADAPTER_FILE) for r in ("straight", "stopped")
    )
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    history = [
        json.loads((tmp_path / r / "metrics.json").read_text())["history"] for r in ("straight", "stopped")
    ]
    assert [r["loss"] for r in history[1]] == [r["loss"] for r in history[0]]


def test_merge_folds_into_zero_points_and_keeps_the_logits(run: Path, tmp_path: Path, db_url: str) -> None:
    from arena.cli import main
    from trainer.qalora_merge import fold, unmerged

    torch.manual_seed(0)
    ids = torch.randint(4, 250, (2, 24))
    wrapped = unmerged(run)
    trained = {n: (m.base.codes.clone(), m.base.scales.clone(), m.base.zeros.clone())
               for n, m in qalora.adapted_layers(wrapped.model).items()}  # fmt: skip
    with torch.no_grad():
        reference = wrapped(input_ids=ids).logits
        in_memory = fold(wrapped)(input_ids=ids).logits
    assert torch.allclose(in_memory, reference, atol=1e-5)

    out = tmp_path / "merged"
    assert main(["merge", str(run), "--out", str(out), "--method", "qalora", "--db", db_url]) == 0
    merged = load_quantized(out)
    layers = qalora.quantized_layers(merged)
    assert layers.keys() == trained.keys()
    shifted = 0
    for name, layer in layers.items():
        codes, scales, zeros = trained[name]
        assert torch.equal(layer.codes, codes) and torch.equal(layer.scales, scales)  # unchanged
        shifted += int((layer.zeros - zeros).abs().gt(1e-3).sum())
    assert shifted > 0  # the adapter went somewhere: into the zero points
    with torch.no_grad():
        loaded = merged(input_ids=ids).logits
    assert torch.allclose(loaded, reference, atol=1e-5)
    assert read_meta(out)["source"] == "qalora-merge" and read_meta(out)["bits"] == 3
    assert main(["merge", str(run), "--out", str(tmp_path / "x"), "--bits", "4", "--db", db_url]) == 2
    assert main(["merge", str(run), "--out", str(tmp_path / "x"), "--method", "qlora", "--db", db_url]) == 2


def test_a_low_bit_folder_is_checked_before_it_is_registered(tmp_path: Path, db_url: str) -> None:
    from arena.cli import main

    (tmp_path / "quantization.json").write_text('{"format": "gptq"}')
    with pytest.raises(FormatError, match=r"quantization\.json: field format"):
        read_meta(tmp_path)
    assert main(["models", "add", "x", "--qalora", str(tmp_path), "--db", db_url]) == 2
    assert main(["models", "add", "x", "--qalora", str(tmp_path / "none"), "--db", db_url]) == 2


def test_a_group_size_that_does_not_divide_a_layer_is_a_clear_error(
    tiny: Path, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture
) -> None:
    from arena.cli import main

    argv = ["train", "--db", db_url, *FAST[:-1], "128", "--base", str(tiny), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "layer model.layers.0.self_attn.q_proj: 64 input channels do not split into groups of 128" in (
        capsys.readouterr().err
    )


def test_vllm_refuses_a_low_bit_contestant_with_the_way_out() -> None:
    from arena.backends import GenerateParams
    from arena.backends.vllm_backend import VLLMBackend
    from arena.cli import UserError
    from arena.models import ModelSpec

    with pytest.raises(UserError, match="vLLM cannot load: generate it with --backend transformers"):
        VLLMBackend(ModelSpec("q", "/models/q", quantization="int3-g32"), GenerateParams())
