"""The typed training configuration: defaults < preset < YAML file < command-line flags.

One dataclass (as TRL's `SFTConfig`), so a run is fully described by one YAML file that is written
next to its adapter and read back by `--resume` and `guanaco merge`. Flags, files and presets go
through the one mechanism every workflow's config uses (:mod:`foundations.configs`): flags are made
from the fields (`lora_r` -> `--lora-r`), so every field can be overridden without extra code, and
a value of the wrong type in a file or preset is refused naming the file, line and field.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from foundations import configs
from foundations.configs import ConfigError
from trainer.presets import PRESETS

CONFIG_FILE = "config.yaml"
METHOD_BITS = {"qlora": (4, 8), "qalora": (4, 3, 2)}
"""Which --bits each --method takes: bitsandbytes NF4/FP4 or int8 for LoRA, QA-LoRA's group-wise integers."""
DEFAULT_GROUP_SIZE = 32


@dataclass
class TrainConfig:
    """Everything a QLoRA run needs. Defaults are the paper's 7B recipe."""

    # what to train
    base: str = "smollm2"
    """Hugging Face model id or local folder; `smollm2` is the embedded SmolLM2-135M-Instruct."""
    data: str = "guanaco"
    """`guanaco` (hub timdettmers/openassistant-guanaco, the paper's data), `oasst1` (hub
    OpenAssistant/oasst1, converted here), `sample` (the project's OASST1 sample), a JSONL/JSON/
    Parquet file, a folder of them (eval/test/validation files held out), or a hub dataset id."""
    format: Literal["oasst1", "guanaco-text", "alpaca", "messages", "pairs"] | None = None
    """oasst1 | guanaco-text | alpaca | messages | pairs; guessed from the first record when unset."""
    eval_data: str | None = None
    """Held-out file; else the source's own validation split, else `eval_fraction` of the records."""
    eval_fraction: float = 0.05
    template: Literal["guanaco", "chat"] = "guanaco"
    """`### Human: ... ### Assistant: ...` text, or the tokenizer's own chat template."""
    train_on: Literal["auto", "all", "assistant"] = "auto"
    """Loss on the whole conversation or on the assistant's turns only; `auto` as qlora.py: the
    whole text of conversations (oasst1, guanaco-text, messages), the answers of alpaca and pairs."""
    eos: Literal["end", "turn"] = "end"
    """EOS once at the end of the text (qlora.py), or after every assistant turn."""
    max_seq_len: int = 512
    max_train_samples: int | None = None
    max_eval_samples: int | None = 1000
    # quantization
    method: Literal["qlora", "qalora"] = "qlora"
    """`qlora`: bitsandbytes 4-bit base + LoRA; `qalora`: group-wise integer base + QA-LoRA (trainer/qalora.py)."""
    bits: int = 4
    """Bits per base weight: qlora 4 (bitsandbytes NF4/FP4) or 8 (bitsandbytes int8, 8-bit LoRA);
    qalora 4, 3 or 2 (group-wise integers)."""
    group_size: Literal[32, 64, 128] | None = None
    """QA-LoRA's quantization group (input channels per scale and zero point); unset = 32. qalora only."""
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """`auto`: bfloat16 on a GPU, float32 on the CPU."""
    quant_storage: Literal["auto", "uint8", "bfloat16", "float16", "float32"] = "auto"
    """`auto`: the compute dtype under FSDP (so shards flatten together), else uint8."""
    # LoRA
    lora_r: int = 64
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    target_modules: list[str] | None = None
    """Module names to adapt; unset means every linear layer except the output head."""
    gradient_checkpointing: bool = True
    # optimisation
    optim: Literal["paged_adamw_32bit", "adamw_32bit", "adamw_torch"] = "paged_adamw_32bit"
    learning_rate: float = 2e-4
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 0.3
    batch_size: int = 1
    grad_accum: int = 16
    max_steps: int = 1875
    group_by_length: bool = True
    packing: bool = False
    """Pack whole conversations into rows of `max_seq_len` (positions restart and attention stays
    within each conversation); `group_by_length` then has nothing to group."""
    seed: int = 42
    # bookkeeping
    out: str = "runs/guanaco"
    eval_steps: int = 187
    eval_batch_size: int = 4
    save_steps: int = 250
    save_total_limit: int = 2
    logging_steps: int = 10
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    preset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes copied into the model card."""

    def __post_init__(self) -> None:
        configs.check_choices(self)
        if self.max_steps < 1 or self.grad_accum < 1 or self.batch_size < 1 or self.max_seq_len < 8:
            raise ConfigError("fields max_steps, grad_accum, batch_size must be >= 1 and max_seq_len >= 8")
        if self.bits not in METHOD_BITS[self.method]:
            allowed = ", ".join(str(b) for b in METHOD_BITS[self.method])
            raise ConfigError(f"field bits: {self.method} takes {allowed}, not {self.bits}")
        if self.group_size is not None and self.method != "qalora":
            raise ConfigError("field group_size: only --method qalora quantizes in groups")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / CONFIG_FILE
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


def build(
    preset: str | None = None, config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Resolve a configuration: defaults, then the preset, then the YAML file, then the overrides."""
    values: dict[str, Any] = {}
    from_file = configs.read_yaml(config_file, TrainConfig) if config_file is not None else {}
    preset = preset or from_file.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values.update(PRESETS[preset], preset=preset)
    values.update(from_file)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(given)
    return configs.build(TrainConfig, values, config_file, [k for k in from_file if k not in given])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per TrainConfig field (default None: only flags given override anything)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a named recipe")
    parser.add_argument("--config", type=Path, help="YAML file of TrainConfig fields")
    parser.add_argument("--resume", type=Path, metavar="RUN", help="continue RUN from its last checkpoint")
    configs.add_arguments(parser, TrainConfig, skip=("preset", "extra"), show_defaults=True)


def from_args(args: argparse.Namespace) -> TrainConfig:
    """The configuration a command line asks for; with --resume, the run's saved one plus overrides."""
    overrides = configs.given(args, TrainConfig)
    if args.resume is not None:
        saved = Path(args.resume) / CONFIG_FILE
        if not saved.is_file():
            raise ConfigError(f"{saved} not found: --resume takes a run folder written by guanaco train")
        return build(config_file=saved, overrides={**overrides, "out": str(args.resume)})
    return build(args.preset, args.config, overrides)
