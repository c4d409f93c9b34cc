"""The model card (README.md) written next to every adapter: what it is, how it was made, how it did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.config import DEFAULT_GROUP_SIZE, TrainConfig
from trainer.formats import train_on_for


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _quantization(cfg: TrainConfig) -> str:
    if cfg.method == "qalora":
        return f"INT{cfg.bits} group-wise asymmetric, group {cfg.group_size or DEFAULT_GROUP_SIZE} (QA-LoRA)"
    return f"4-bit {cfg.quant_type.upper()}" + (" + double quantization" if cfg.double_quant else "")


def _use(cfg: TrainConfig) -> list[str]:
    name = Path(cfg.out).name
    if cfg.method == "qalora":
        return [f"guanaco merge {cfg.out} --out merged/{name}   # folds into the zero points: stays INT{cfg.bits}",
                f"guanaco models add {name} --qalora merged/{name}"]  # fmt: skip
    return [f"guanaco models add {name} --adapter {cfg.out}",
            f"guanaco merge {cfg.out} --out merged/{name}   # onto the dequantized 4-bit base"]  # fmt: skip


def write_card(folder: Path, cfg: TrainConfig, metrics: dict[str, Any]) -> Path:
    """A Hugging Face style card with YAML front matter, the recipe, the data report and the losses."""
    model = metrics.get("model", {})
    train = metrics.get("data", {}).get("train", {})
    train_on = train_on_for(cfg.train_on, train["format"]) if train.get("format") else cfg.train_on
    recipe = {
        "quantization": _quantization(cfg),
        "bits per quantized weight": _fmt(model.get("bits_per_weight")),
        "LoRA": f"r={cfg.lora_r}, alpha={cfg.lora_alpha}, dropout={cfg.lora_dropout}, "
        f"modules={','.join(cfg.target_modules) if cfg.target_modules else 'all linear but the head'}",
        "optimizer": f"{cfg.optim}, lr {cfg.learning_rate} ({cfg.lr_scheduler}), betas "
        f"({cfg.adam_beta1}, {cfg.adam_beta2}), max grad norm {cfg.max_grad_norm}",
        "batch": f"{cfg.batch_size} x {cfg.grad_accum} accumulation, {cfg.max_steps} steps, "
        + (
            f"packed rows of {cfg.max_seq_len} tokens"
            if cfg.packing
            else f"length grouping {'on' if cfg.group_by_length else 'off'}"
        ),
        "format": f"{cfg.template} template, loss on {'all tokens' if train_on == 'all' else 'answers only'}, "
        f"EOS {'once at the end' if cfg.eos == 'end' else 'after every answer'}, max {cfg.max_seq_len} tokens",
    }
    data_lines = [
        f"| {split} | {r['conversations']} | {r.get('trimmed', 0)} | {r['truncated']} | "
        f"{', '.join(f'{k}: {v}' for k, v in sorted(r['skipped'].items())) or '-'} |"
        for split, r in metrics.get("data", {}).items()
    ]
    text = "\n".join(
        [
            "---",
            "library_name: peft",
            f"base_model: {cfg.base}",
            "tags: [qlora, guanaco, lora, 4-bit]",
            "---",
            f"# {Path(cfg.out).name}: a Guanaco-style QLoRA adapter",
            "",
            f"A LoRA adapter for `{cfg.base}` trained on `{cfg.data}` with guanaco-arena's trainer"
            + (f" (preset `{cfg.preset}`)." if cfg.preset else "."),
            "",
            "## Recipe",
            *(f"- **{k}**: {v}" for k, v in recipe.items()),
            "",
            "## Results",
            f"- steps: {metrics.get('step')}",
            f"- final training loss: {_fmt(metrics.get('train_loss'))}",
            f"- held-out loss: {_fmt(metrics.get('eval_loss'))}",
            f"- throughput: {_fmt(metrics.get('tokens_per_s'))} real tokens/s",
            "",
            "## Data",
            "| split | conversations | trimmed to the last answer | truncated | skipped (by reason) |",
            "|---|---|---|---|---|",
            *data_lines,
            "",
            "## Use",
            "```",
            *_use(cfg),
            "```",
            "The full configuration is in `config.yaml`; per-step losses in `metrics.json`.",
            "",
        ]
    )
    path = Path(folder) / "README.md"
    path.write_text(text)
    return path
