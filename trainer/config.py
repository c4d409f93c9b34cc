"""The typed training configuration: defaults < preset < YAML file < command-line flags.

One dataclass (as TRL's `SFTConfig`), so a run is fully described by one YAML file that is written
next to its adapter and read back by `--resume` and `guanaco merge`. Command-line flags are made
from the fields (`lora_r` -> `--lora-r`), so every field can be overridden without extra code.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from foundations.errors import UserError
from trainer.presets import PRESETS

CONFIG_FILE = "config.yaml"
METHOD_BITS = {"qlora": (4, 8), "qalora": (4, 3, 2)}
"""Which --bits each --method takes: bitsandbytes NF4/FP4 or int8 for LoRA, QA-LoRA's group-wise integers."""
DEFAULT_GROUP_SIZE = 32


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message names the file and field."""


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
        for f in dataclasses.fields(self):
            choices = _literal_choices(_field_types()[f.name])
            value = getattr(self, f.name)
            if choices and value not in choices and value is not None:
                raise ConfigError(f"field {f.name}: {value!r} is not one of {', '.join(map(str, choices))}")
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


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _literal_choices(hint: Any) -> tuple[Any, ...]:
    """The allowed values of a `Literal[...]` (or `Literal[...] | None`) field; () for other fields."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping of TrainConfig fields; unknown fields are an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({err})") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of field: value")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    lines = path.read_text().splitlines()
    for key in raw:
        if key not in known:
            line = next((i + 1 for i, text in enumerate(lines) if text.startswith(f"{key}:")), "?")
            raise ConfigError(f"{path}, line {line}: unknown field {key!r}")
    return raw


def build(
    preset: str | None = None, config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Resolve a configuration: defaults, then the preset, then the YAML file, then the overrides."""
    values: dict[str, Any] = {}
    if config_file is not None:
        from_file = read_yaml(config_file)
        preset = preset or from_file.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values.update(PRESETS[preset], preset=preset)
    if config_file is not None:
        values.update(from_file)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return TrainConfig(**values)
    except TypeError as err:
        raise ConfigError(str(err)) from err


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per TrainConfig field (default None: only flags given override anything)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a named recipe")
    parser.add_argument("--config", type=Path, help="YAML file of TrainConfig fields")
    parser.add_argument("--resume", type=Path, metavar="RUN", help="continue RUN from its last checkpoint")
    hints = _field_types()
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("preset", "extra"):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind, nargs_list = _flag_type(hints[f.name])
        doc = f"(default {f.default!r})" if f.default is not dataclasses.MISSING else ""
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=doc)
        elif nargs_list:
            parser.add_argument(flag, type=_comma_list, default=None, help=f"comma-separated {doc}")
        else:
            choices = _literal_choices(hints[f.name]) or None
            parser.add_argument(flag, type=kind, choices=choices, default=None, help=doc)


def _flag_type(hint: Any) -> tuple[type, bool]:
    """The scalar type of a field hint, and whether it is a list."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = args[0]
    if typing.get_origin(hint) is list:
        return str, True
    if typing.get_origin(hint) is Literal:
        return type(typing.get_args(hint)[0]), False
    return hint, False


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def from_args(args: argparse.Namespace) -> TrainConfig:
    """The configuration a command line asks for; with --resume, the run's saved one plus overrides."""
    if args.resume is not None:
        saved = Path(args.resume) / CONFIG_FILE
        if not saved.is_file():
            raise ConfigError(f"{saved} not found: --resume takes a run folder written by guanaco train")
        return build(config_file=saved, overrides={**overrides_from(args), "out": str(args.resume)})
    return build(args.preset, args.config, overrides_from(args))
