"""4-bit loading, LoRA placement, bits per weight on real Linear4bit layers, adapter round trip, merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.tiny_model import CPU_PATHS, force_bnb_cpu_path
from tests.trainer_tiny import tiny_checkpoint
from trainer import model as qmodel
from trainer.bnb_cpu import four_bit_layers, is_packed, packed_layout_fits
from trainer.config import build
from trainer.merge import merge


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


def config(base: Path, **overrides):
    return build("smoke", overrides={"base": str(base), "lora_dropout": 0.0, **overrides})


@pytest.mark.parametrize(
    ("quant_type", "double_quant", "expected"), [("nf4", True, 4.127), ("fp4", False, 4.5)]
)
def test_bits_per_weight_from_config_match_a_real_layer(
    quant_type: str, double_quant: bool, expected: float
) -> None:
    import bitsandbytes as bnb

    computed = qmodel.bits_per_weight(double_quant)
    assert computed == pytest.approx(expected, abs=5e-4)
    layer = bnb.nn.Linear4bit(256, 256, bias=False, compute_dtype=torch.float32,
                              compress_statistics=double_quant, quant_type=quant_type).to("cpu")  # fmt: skip
    assert layer.weight.quant_state.nested is double_quant
    assert qmodel.measured_bits_per_weight(layer) == computed  # 65,536 weights: whole nested blocks


def test_four_bit_base_with_lora_on_every_linear_but_the_head(tiny: Path) -> None:
    import bitsandbytes as bnb

    cfg = config(tiny)
    if not torch.cuda.is_available():  # bf16 stays off on the CPU even when asked for
        assert (
            qmodel.compute_dtype(cfg)
            == qmodel.compute_dtype(config(tiny, compute_dtype="bfloat16"))
            == torch.float32
        )
    base = qmodel.load_base(cfg)
    linear4 = {name.split(".")[-1] for name, m in base.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert linear4 == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    model = qmodel.add_lora(base, cfg)
    adapted = {name.split(".")[-4] for name, _ in model.named_parameters() if "lora_A" in name}
    assert adapted == linear4
    assert all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())
    info = qmodel.footprint(model, cfg)
    assert info["quantized_layers"] == 14 and info["bits_per_weight"] == pytest.approx(4.127, abs=5e-4)
    assert 4.12 < info["bits_per_weight_measured"] < 4.14
    assert "4.127 bits/weight" in qmodel.describe(info, cfg)

    named = config(tiny, target_modules=["q_proj", "v_proj"], quant_type="fp4", double_quant=False)
    model = qmodel.add_lora(qmodel.load_base(named), named)
    assert {n.split(".")[-4] for n, _ in model.named_parameters() if "lora_A" in n} == {"q_proj", "v_proj"}
    assert qmodel.footprint(model, named)["bits_per_weight_measured"] == 4.5


def trained_looking_run(tiny: Path, run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A run folder whose adapter has non-zero B matrices (as after training), and (input, logits)."""
    cfg = config(tiny, out=str(run))
    model = qmodel.add_lora(qmodel.load_base(cfg), cfg)
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.2)
    ids = torch.randint(4, 200, (2, 24))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    model.save_pretrained(run)
    cfg.save(run)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny).save_pretrained(run)
    return ids, logits


def test_saved_adapter_reloads_to_the_same_logits(tiny: Path, tmp_path: Path) -> None:
    ids, logits = trained_looking_run(tiny, tmp_path / "run")
    cfg = config(tiny)
    reloaded = qmodel.add_lora(qmodel.load_base(cfg), cfg, adapter=tmp_path / "run")
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids).logits, logits)


def stored_base(model) -> list[dict]:
    """Each 4-bit layer's stored codes and quantization state, copied."""
    rows = []
    for layer in four_bit_layers(model):
        state = layer.weight.quant_state
        rows.append({"codes": layer.weight.data.clone(), "absmax": state.absmax.clone(), "dtype": state.dtype,
                     "nested": state.nested, "absmax2": state.state2.absmax.clone() if state.nested else None,
                     "packed": is_packed(layer)})  # fmt: skip
    return rows


@pytest.mark.parametrize("cpu", CPU_PATHS)
def test_evaluation_never_repacks_the_frozen_base_on_a_cpu_that_is(
    cpu: str, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    force_bnb_cpu_path(monkeypatch, cpu)
    cfg = config(tiny)
    model = qmodel.add_lora(qmodel.load_base(cfg), cfg)
    # every tiny layer fits the packed layout, so on a packed-capable CPU bitsandbytes would repack them all
    assert all(packed_layout_fits(layer) for layer in four_bit_layers(model))
    before, bits = stored_base(model), qmodel.footprint(model, cfg)["bits_per_weight_measured"]
    ids = torch.randint(4, 200, (2, 16))
    model.eval()
    with torch.no_grad():
        evaluated = model(input_ids=ids).logits
    model.train()
    trained = model(input_ids=ids).logits  # dropout 0: the same function, now with gradients
    assert torch.equal(evaluated, trained.detach())
    after = stored_base(model)
    assert [row["packed"] for row in after] == [False] * 14
    for old, new in zip(before, after, strict=True):
        assert old.keys() == new.keys()
        for key, value in old.items():
            assert torch.equal(value, new[key]) if isinstance(value, torch.Tensor) else value == new[key], key
    assert qmodel.footprint(model, cfg)["bits_per_weight_measured"] == bits


@pytest.mark.parametrize("cpu", CPU_PATHS)
def test_merge_onto_the_dequantized_base_keeps_the_outputs_on_a_cpu_that_is(
    cpu: str, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    force_bnb_cpu_path(monkeypatch, cpu)
    run = tmp_path / "run"
    ids, logits = trained_looking_run(tiny, run)
    out = merge(run, tmp_path / "merged")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        merged_logits = merged(input_ids=ids).logits
        naive = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(tiny), str(run)
        ).merge_and_unload()
        naive_logits = naive(input_ids=ids).logits
    error = (merged_logits - logits).abs().max().item()
    assert error < 1e-4
    # merging onto the original (unquantized) weights would shift the model far more
    assert (naive_logits - logits).abs().max().item() > 100 * max(error, 1e-6)
