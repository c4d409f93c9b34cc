"""The sweep's typed configuration and its grid: defaults < YAML file < flags, one point per setting.

Built like every workflow's config (:mod:`foundations.configs`). Grid values are typed as the
trainer's own fields (as the trainer's flags read them), so
`lora_r=8` is the int 8 and a bad value is refused before anything trains.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundations import configs
from foundations.configs import flag
from foundations.errors import UserError
from foundations.paths import DATA_DIR

PRODUCTS = DATA_DIR / "samples" / "products.jsonl"
LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]
TARGET_ALIASES: dict[str, list[str] | None] = {
    "qv": ["q_proj", "v_proj"],
    "all": LLAMA_LINEAR,
    "all-linear": None,
}
"""`qv` and `all` (every linear layer including the output head) are the guide's settings, for
Llama-family models; `all-linear` is peft's every linear layer but the head. Other module lists
are written with `+`: `q_proj+k_proj+v_proj`."""
FIXED_FIELDS = ("base", "data", "format", "eval_data", "eval_fraction", "template", "out", "preset")
"""Trainer fields that must be the same for every point (one held-out set, one prompt format)."""
SHORT_LABELS = {"lora_r": "r{}", "bits": "{}bit", "lora_alpha": "a{}", "learning_rate": "lr{}",
                "max_steps": "{}steps", "lora_dropout": "drop{}"}  # fmt: skip


@dataclass
class SweepConfig:
    """What one sweep does. Defaults: the embedded SmolLM2 on the product-description sample."""

    name: str = field(default="products-sweep", metadata=flag(
        "benchmark name of the held-out prompts and prefix of contestant names"))  # fmt: skip
    """The benchmark name of the held-out prompts and the prefix of every contestant's name."""
    base: str = field(default="smollm2", metadata=flag(
        "base model: hub id, local folder or smollm2 (the embedded model)"))  # fmt: skip
    data: str = field(default=str(PRODUCTS), metadata=flag(
        "local JSONL/JSON/Parquet (Alpaca, messages, ...) or a HF dataset id"))  # fmt: skip
    """A local JSONL/JSON/Parquet file (Alpaca, chat messages, ...) or a Hugging Face dataset id."""
    grid: dict[str, list[Any]] = field(
        default_factory=lambda: {"lora_r": [8, 16], "target_modules": ["qv", "all"]}
    )
    """Trainer field -> values; one adapter per combination."""
    points: list[dict[str, Any]] | None = None
    """Instead of a grid: the settings to compare, one mapping each (the guide's four settings are
    no full grid)."""
    train: dict[str, Any] = field(default_factory=dict)
    """Trainer fields shared by every point (`preset`, `max_steps`, ...). Loss is on the responses
    only (`train_on: assistant`) unless set here."""
    out: str = field(default="runs/sweep", metadata=flag(
        "folder for the adapters, the table and the plot (default runs/sweep)"))  # fmt: skip
    eval_fraction: float = 0.2
    """Share of the records held out: the eval loss and the prompts to answer come from them."""
    prompts: int = field(default=20, metadata=flag("held-out prompts each contestant answers (default 20)"))
    """Held-out prompts each contestant answers (the first N of the held-out split)."""
    max_new_tokens: int = field(default=128, metadata=flag("answer length limit (default 128)"))
    temperature: float = 0.7
    top_p: float = 0.9
    backend: str = "transformers"
    batch_size: int = 8
    judge_model: str = field(default="gpt-4", metadata=flag("judge as the endpoint names it (default gpt-4)"))
    judge_name: str | None = field(default=None, metadata=flag(
        "name stored with each judgment (default: --judge-model)"))  # fmt: skip
    base_url: str | None = field(default=None, metadata=flag(
        "OpenAI-compatible judge endpoint, e.g. http://127.0.0.1:8000/v1"))  # fmt: skip
    api_key_env: str = "OPENAI_API_KEY"
    local_judge: bool = field(default=False, metadata=flag(
        "judge with the embedded SmolLM2 served on 127.0.0.1 (shows the pipeline only)", action="store_true"))  # fmt: skip
    """Judge with the embedded SmolLM2 served on 127.0.0.1 (demonstrates the pipeline; a 135M judge
    measures nothing)."""
    template: str | None = field(default=None, metadata=flag(
        "judge template (default qlora-vicuna; the small-judge one locally)"))  # fmt: skip
    """Judge template; default `qlora-vicuna`, or the small-judge template for the local judge."""
    judge_max_tokens: int = field(default=1024, metadata=flag("judge output limit per call (default 1024)"))
    concurrency: int = 8
    budget_usd: float | None = field(
        default=None, metadata=flag("stop judging before spending more than this")
    )
    costs: str | None = None
    human: bool = field(
        default=False, metadata=flag("queue the answers for the human arena", action="store_true")
    )
    """Queue the answers for the human arena instead of a judge model."""
    bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        from trainer.config import TrainConfig

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", self.name):
            raise UserError(f"sweep name {self.name!r}: use letters, digits, '.', '_' or '-' (at most 41)")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        if not self.grid and not self.points:
            raise UserError("the grid is empty: give at least one field=value1,value2")
        for key in {**self.grid, **self.train, **{k: 0 for p in self.points or [] for k in p}}:
            if key not in known:
                raise UserError(f"{key!r} is not a trainer field (see `guanaco train --help`)")
            if key in FIXED_FIELDS and key not in self.train:
                raise UserError(f"field {key!r} must be the same for every point: set it once")
        for key in self.train:
            if key in ("base", "data", "eval_fraction", "out", "seed"):
                raise UserError(f"train field {key!r} is the sweep's own field: set {key} at the top level")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise UserError(f"grid field {key!r}: expected a non-empty list of values")
        if (
            self.prompts < 1
            or self.max_new_tokens < 1
            or self.batch_size < 1
            or not 0 < self.eval_fraction < 1
        ):
            raise UserError("prompts, max_new_tokens and batch_size must be >= 1, eval_fraction in (0, 1)")
        if self.human and (self.local_judge or self.base_url):
            raise UserError("--human queues the answers for people: drop --local-judge/--base-url")

    @property
    def judge(self) -> str:
        """The judge name stored with each judgment (`human` selects every annotator's votes)."""
        if self.human:
            return "human"
        return self.judge_name or ("smollm2-judge" if self.local_judge else self.judge_model)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_config(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> SweepConfig:
    """Defaults < YAML file < flags; `train` adds shared trainer fields to the file's. Grid and
    shared values are typed as the trainer's fields (`"8"` -> 8)."""
    from_file = configs.read_yaml(config_file, SweepConfig) if config_file else {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values = {**from_file, **given}
    where = str(config_file) if config_file else "the command line"
    for name in ("grid", "train"):
        if not isinstance(values.get(name, {}), dict):
            raise UserError(f"{where}: field {name}: expected a mapping of trainer field to value(s)")
    if "grid" in values and "points" in values:
        raise UserError(f"{where}: give either grid or points, not both")
    if "grid" in values:
        values["grid"] = {k: [typed(k, v) for v in _as_list(vs)] for k, vs in values["grid"].items()}
    if "points" in values:
        if not isinstance(values["points"], list) or not all(
            isinstance(p, dict) and p for p in values["points"]
        ):
            raise UserError(f"{where}: field points: expected a list of mappings of trainer field to value")
        values["points"] = [{k: typed(k, v) for k, v in p.items()} for p in values["points"]]
    values["train"] = {k: typed(k, v) for k, v in {**values.get("train", {}), **(train or {})}.items()}
    return configs.build(SweepConfig, values, config_file, [k for k in from_file if k not in given])


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """`["lora_r=8,16", "target_modules=qv,all"]` -> {"lora_r": ["8", "16"], ...} (typed later)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise UserError(f"--grid {item!r}: expected field=value1,value2 (e.g. lora_r=8,16)")
        grid[key.strip().replace("-", "_")] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def _as_list(values: Any) -> list[Any]:
    return values if isinstance(values, list) else [values]


def typed(key: str, value: Any) -> Any:
    """A grid value as the trainer field wants it: `"8"` -> 8 for `lora_r`; `target_modules`
    aliases and `a+b` lists stay as written (see :func:`target_modules`)."""
    from trainer.config import TrainConfig

    if key not in {f.name for f in dataclasses.fields(TrainConfig)}:
        raise UserError(f"{key!r} is not a trainer field (see `guanaco train --help`)")
    if key == "target_modules" or not isinstance(value, str):
        if key == "target_modules" and isinstance(value, str) and "," in value:
            raise UserError(f"grid target_modules {value!r}: join module names with '+', not ','")
        return value
    try:
        return configs.flag_value(TrainConfig, key, value)
    except configs.ConfigError as err:
        raise UserError(f"grid {key}={value!r}: not a valid value for this trainer field") from err


def target_modules(value: Any) -> list[str] | None:
    if isinstance(value, list):
        return [str(v) for v in value]
    if value in TARGET_ALIASES:
        return TARGET_ALIASES[value]
    return [part for part in str(value).split("+") if part]


# ---------------------------------------------------------------- the grid


@dataclass(frozen=True)
class Point:
    """One setting of the grid: its contestant name, its values as written, its trainer config."""

    name: str
    settings: dict[str, Any]
    train: Any  # trainer.config.TrainConfig

    @property
    def folder(self) -> Path:
        return Path(self.train.out)


def label(key: str, value: Any) -> str:
    """The part of a contestant's name that one setting contributes: `r8`, `qv`, `4bit`."""
    if key == "target_modules":
        text = "+".join(value) if isinstance(value, list) else str(value)
    else:
        text = SHORT_LABELS.get(key, key.replace("_", "") + "{}").format(value)
    return re.sub(r"[^A-Za-z0-9.+_]", "_", text)


def settings_list(cfg: SweepConfig) -> list[dict[str, Any]]:
    """The explicit points, or every combination of the grid in the grid's order."""
    if cfg.points:
        return [dict(p) for p in cfg.points]
    keys = list(cfg.grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(cfg.grid[k] for k in keys))]


def points(cfg: SweepConfig) -> list[Point]:
    """Every combination of the grid, in the grid's order, each with its full trainer config."""
    from trainer.config import ConfigError, build

    fixed = {k: v for k, v in cfg.train.items() if k != "preset"}
    if "target_modules" in fixed:
        fixed["target_modules"] = target_modules(fixed["target_modules"])
    found = []
    for settings in settings_list(cfg):
        name = "-".join([cfg.name, *(label(k, v) for k, v in settings.items())])
        overrides = {"train_on": "assistant", **fixed, **settings, "base": cfg.base, "data": cfg.data,
                     "eval_fraction": cfg.eval_fraction, "seed": cfg.seed, "out": str(Path(cfg.out) / name)}  # fmt: skip
        if "target_modules" in settings:
            overrides["target_modules"] = target_modules(settings["target_modules"])
        try:
            train_cfg = build(cfg.train.get("preset"), None, overrides)
        except ConfigError as err:
            raise UserError(f"grid point {name}: {err}") from err
        if overrides.get("target_modules", ...) is None:  # `all-linear`: build drops None overrides
            train_cfg.target_modules = None
        found.append(Point(name, settings, train_cfg))
    names = [p.name for p in found]
    if len(set(names)) != len(names):
        raise UserError(f"two grid points got the same name ({', '.join(names)}): make the values distinct")
    return found
