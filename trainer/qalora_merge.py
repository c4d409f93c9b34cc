"""Merges that end in a low-bit model: a QA-LoRA run folded into its zero points, or a QLoRA run merged
and then quantized with the same group-wise quantizer (post-training quantization, the paper's baseline).

Both write the project's low-bit format (:mod:`trainer.qalora_format`), so the two are measured and
served alike; only how the integers came about differs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from trainer import qalora
from trainer.config import CONFIG_FILE, DEFAULT_GROUP_SIZE, METHOD_BITS, TrainConfig, build
from trainer.merge import MergeError
from trainer.merge import merged_model as merged_qlora
from trainer.qalora_format import save_quantized

log = logging.getLogger(__name__)


def run_config(run: Path) -> TrainConfig:
    config_file = Path(run) / CONFIG_FILE
    if not config_file.is_file():
        raise MergeError(f"{run}: not a finished run (needs {CONFIG_FILE} from guanaco train)")
    return build(config_file=config_file)


def unmerged(run: Path) -> qalora.QALoraModel:
    """The run's base, quantized exactly as in training, with its trained QA-LoRA adapter (eval mode)."""
    cfg = build(config_file=Path(run) / CONFIG_FILE, overrides={"gradient_checkpointing": False})
    try:
        model = qalora.add_lora(qalora.load_base(cfg), cfg, adapter=Path(run))
    except qalora.QALoraError as err:
        raise MergeError(str(err)) from err
    model.model.config.use_cache = True  # off for training; the merged model generates
    return model.eval()


def fold(wrapped: qalora.QALoraModel) -> nn.Module:
    """Every QA-LoRA layer replaced by its base with the adapter folded into the zero points."""
    model = wrapped.model
    for name, layer in qalora.adapted_layers(model).items():
        qalora.replace(model, name, layer.fold())
    return model


def merged_qalora(run: Path) -> nn.Module:
    """A QA-LoRA run as one low-bit model: codes and scales as trained, zero points shifted."""
    run_config(run)
    return fold(unmerged(run))


def quantized_qlora(run: Path, bits: int, group_size: int) -> nn.Module:
    """A QLoRA run merged onto its dequantized base, then quantized group-wise to `bits`."""
    cfg = run_config(run)
    model = merged_qlora(run)
    try:
        qalora.quantize_model(model, bits, group_size, cfg.target_modules)
    except qalora.QALoraError as err:
        raise MergeError(str(err)) from err
    return model


def check_request(
    cfg: TrainConfig, run: Path, method: str | None, bits: int | None, group_size: int | None
) -> None:
    """Refuse a merge that contradicts the run: another method, or other bits for a QA-LoRA run."""
    if method is not None and method != cfg.method:
        raise MergeError(f"{run} was trained with --method {cfg.method}, not {method}")
    if cfg.method == "qalora":
        trained = (cfg.bits, cfg.group_size or DEFAULT_GROUP_SIZE)
        if (bits or trained[0], group_size or trained[1]) != trained:
            raise MergeError(
                f"{run} is a QA-LoRA run at INT{trained[0]}, group {trained[1]}: its adapter folds into that "
                "quantization only; leave out --bits and --group-size"
            )
    elif bits is not None and bits not in METHOD_BITS["qalora"]:
        raise MergeError(f"--bits {bits}: a merged QLoRA model is quantized to 4, 3 or 2 bits")
    elif bits is None and group_size is not None:
        raise MergeError("--group-size needs --bits: it sets the groups of the post-training quantization")


def merge_low_bit(run: Path, out: Path, method: str | None = None, bits: int | None = None,
                  group_size: int | None = None, dtype: str | None = None) -> Path:  # fmt: skip
    """Write a QA-LoRA run folded (or a QLoRA run merged and quantized to `bits`) into `out`."""
    from transformers import AutoTokenizer

    cfg = run_config(run)
    check_request(cfg, run, method, bits, group_size)
    if cfg.method == "qalora":
        model, source = merged_qalora(run), "qalora-merge"
    else:
        model = quantized_qlora(run, bits, group_size or DEFAULT_GROUP_SIZE)
        source = "qlora-merge-then-quantize"
    save_quantized(model, AutoTokenizer.from_pretrained(run), out, source, dtype)
    log.info("merged %s into a low-bit model in %s (%s)", run, out, source)
    return Path(out)


def wants_low_bit(run: Path, bits: int | None) -> bool:
    """Whether `guanaco merge` writes the low-bit format: for every QA-LoRA run, and for --bits."""
    return bits is not None or run_config(run).method == "qalora"
