"""`guanaco sweep`: choose LoRA settings by tournament, not by eye.

One adapter per point of a grid of trainer settings (`lora_r=8,16 target_modules=qv,all bits=4,8`),
each registered as a contestant named from its settings, answers on a held-out prompt set, every
pair judged in both orders (or left to people in the arena), and one table per setting: trainable
parameters, training time, peak memory, eval loss and a Bradley-Terry rating with its interval.

Everything is resumable. A point is finished when its folder holds the completion marker, written
atomically (a temporary file renamed into place) only after the trainer wrote its outputs; an
unfinished point continues from its last checkpoint. Generation and judging go through the same
idempotent runners as `guanaco generate` and `guanaco judge`, so a killed sweep, run again, does
only what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sqlalchemy import func, select

from arena.cli import UserError
from arena.paths import DATA_DIR
from arena.store import Contestant, Generation, Prompt, Store, finish_run, start_run

log = logging.getLogger(__name__)

MARKER = "SWEEP_DONE.json"
"""Written last, atomically, into a point's folder: its presence means the point is finished."""
PRODUCTS = DATA_DIR / "samples" / "products.jsonl"
SMALL_JUDGE_TEMPLATE = DATA_DIR / "samples" / "small-judge.yaml"
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
MEMORY_NOTE = {
    "gpu": "peak GPU memory allocated by torch",
    "cpu": "peak resident memory of the process (includes the Python runtime)",
}


@dataclass
class SweepConfig:
    """What one sweep does. Defaults: the embedded SmolLM2 on the product-description sample."""

    name: str = "products-sweep"
    """The benchmark name of the held-out prompts and the prefix of every contestant's name."""
    base: str = "smollm2"
    data: str = str(PRODUCTS)
    """A local JSONL/JSON/Parquet file (Alpaca, chat messages, ...) or a Hugging Face dataset id."""
    grid: dict[str, list[Any]] = field(
        default_factory=lambda: {"lora_r": [8, 16], "target_modules": ["qv", "all"]}
    )
    """Trainer field -> values; one adapter per combination."""
    train: dict[str, Any] = field(default_factory=dict)
    """Trainer fields shared by every point (`preset`, `max_steps`, ...). Loss is on the responses
    only (`train_on: assistant`) unless set here."""
    out: str = "runs/sweep"
    eval_fraction: float = 0.2
    """Share of the records held out: the eval loss and the prompts to answer come from them."""
    prompts: int = 20
    """Held-out prompts each contestant answers (the first N of the held-out split)."""
    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.9
    backend: str = "transformers"
    batch_size: int = 8
    judge_model: str = "gpt-4"
    judge_name: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    local_judge: bool = False
    """Judge with the embedded SmolLM2 served on 127.0.0.1 (demonstrates the pipeline; a 135M judge
    measures nothing)."""
    template: str | None = None
    """Judge template; default `qlora-vicuna`, or the small-judge template for the local judge."""
    judge_max_tokens: int = 1024
    concurrency: int = 8
    budget_usd: float | None = None
    costs: str | None = None
    human: bool = False
    """Queue the answers for the human arena instead of a judge model."""
    bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        from trainer.config import TrainConfig

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", self.name):
            raise UserError(f"sweep name {self.name!r}: use letters, digits, '.', '_' or '-' (at most 41)")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        if not self.grid:
            raise UserError("the grid is empty: give at least one field=value1,value2")
        for key in {**self.grid, **self.train}:
            if key not in known:
                raise UserError(f"{key!r} is not a trainer field (see `guanaco train --help`)")
        for key, values in self.grid.items():
            if key in FIXED_FIELDS:
                raise UserError(f"grid field {key!r} must be the same for every point: set it once")
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


def read_config(path: Path) -> dict[str, Any]:
    """A YAML mapping of SweepConfig fields; an unknown field is an error naming file and line."""
    if not path.is_file():
        raise UserError(f"{path}: sweep config not found")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise UserError(f"{path}{f', line {mark.line + 1}' if mark else ''}: not valid YAML ({err})") from err
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of field: value")
    known = {f.name for f in dataclasses.fields(SweepConfig)}
    for key in raw:
        if key not in known:
            line = next((i + 1 for i, row in enumerate(text.splitlines()) if row.startswith(f"{key}:")), "?")
            raise UserError(f"{path}, line {line}: unknown field {key!r}; fields: {', '.join(sorted(known))}")
    return raw


def build_config(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> SweepConfig:
    """Defaults < YAML file < flags; `train` adds shared trainer fields to the file's. Grid and
    shared values are typed as the trainer's fields (`"8"` -> 8)."""
    values = read_config(config_file) if config_file else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    where = str(config_file) if config_file else "the command line"
    for name in ("grid", "train"):
        if not isinstance(values.get(name, {}), dict):
            raise UserError(f"{where}: field {name}: expected a mapping of trainer field to value(s)")
    if "grid" in values:
        values["grid"] = {k: [typed(k, v) for v in _as_list(vs)] for k, vs in values["grid"].items()}
    values["train"] = {k: typed(k, v) for k, v in {**values.get("train", {}), **(train or {})}.items()}
    try:
        return SweepConfig(**values)
    except TypeError as err:
        raise UserError(f"{where}: {err}") from err


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
    from trainer.config import TrainConfig, add_arguments, overrides_from

    if key not in {f.name for f in dataclasses.fields(TrainConfig)}:
        raise UserError(f"{key!r} is not a trainer field (see `guanaco train --help`)")
    if key == "target_modules" or not isinstance(value, str):
        if key == "target_modules" and isinstance(value, str) and "," in value:
            raise UserError(f"grid target_modules {value!r}: join module names with '+', not ','")
        return value
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    add_arguments(parser)
    try:
        parsed = parser.parse_args([f"--{key.replace('_', '-')}", value])
    except (argparse.ArgumentError, SystemExit) as err:
        raise UserError(f"grid {key}={value!r}: not a valid value for this trainer field") from err
    return overrides_from(parsed)[key]


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


def points(cfg: SweepConfig) -> list[Point]:
    """Every combination of the grid, in the grid's order, each with its full trainer config."""
    from trainer.config import ConfigError, build

    fixed = {k: v for k, v in cfg.train.items() if k != "preset"}
    if "target_modules" in fixed:
        fixed["target_modules"] = target_modules(fixed["target_modules"])
    keys = list(cfg.grid)
    found = []
    for combo in itertools.product(*(cfg.grid[k] for k in keys)):
        settings = dict(zip(keys, combo, strict=True))
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


# ---------------------------------------------------------------- training


def finished(point: Point) -> dict[str, Any] | None:
    """The point's training record when its marker is there (and readable), else None."""
    marker = point.folder / MARKER
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:  # cannot happen with an atomic write; retrain rather than trust it
        log.warning("%s is not valid JSON: %s will be trained again", marker, point.name)
        return None


def write_marker(folder: Path, record: dict[str, Any]) -> Path:
    """Write the completion marker atomically: a temporary file, flushed to disk, renamed into place."""
    marker = folder / MARKER
    temporary = folder / f".{MARKER}.tmp"
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, default=float)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, marker)
    return marker


def train_point(point: Point) -> dict[str, Any]:
    """Train one point (continuing from its last checkpoint if a sweep was killed), or read the
    record of a finished one. Training time is wall time; on a resumed point it is scaled from the
    steps this run took to the whole run, and flagged as estimated."""
    from trainer.data import DataError
    from trainer.train import TrainError, checkpoints, train

    done = finished(point)
    if done is not None:
        return done
    found = checkpoints(point.folder)
    first_step = int(found[-1].name.split("-")[1]) if found else 0
    reset_peak_memory()
    started = time.perf_counter()
    try:
        metrics = train(point.train, resume=bool(found))
    except (DataError, TrainError) as err:
        raise UserError(f"training {point.name}: {err}") from err
    seconds = time.perf_counter() - started
    ran = metrics["step"] - first_step
    if first_step and not ran:
        seconds = None  # only the final save was left: no step was timed
    elif first_step:
        seconds = seconds * metrics["step"] / ran
    memory, kind = peak_memory_mb()
    record = {
        "name": point.name,
        "settings": point.settings,
        "trainable_params": int(metrics["model"]["trainable_params"]),
        "train_seconds": seconds,
        "time_estimated": bool(first_step),
        "peak_memory_mb": memory,
        "memory": MEMORY_NOTE[kind],
        "eval_loss": metrics["eval_loss"],
        "train_loss": metrics["train_loss"],
        "steps": metrics["step"],
    }
    write_marker(point.folder, record)
    return record


def reset_peak_memory() -> None:
    """Start a fresh peak: torch's counter on a GPU; the kernel's high-water mark of this process
    on Linux (writing 5 to /proc/self/clear_refs), so each point's peak is its own."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        log.debug("cannot reset the peak resident memory; later points report the peak so far")


def peak_memory_mb() -> tuple[float | None, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "gpu"
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None, "cpu"
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return (int(found.group(1)) / 1024 if found else None), "cpu"


# ---------------------------------------------------------------- prompts and contestants


def data_label(source: str) -> str:
    """The data as provenance may show it: a file's name (never a machine path) or a hub id."""
    from trainer.data import is_hub_id

    return source if is_hub_id(source) else Path(source).name


def held_out_prompts(cfg: SweepConfig, point: Point) -> list[dict[str, Any]]:
    """The first `cfg.prompts` held-out conversations as benchmark rows: the last user turn is the
    prompt, earlier turns are context, the held-out answer is the reference."""
    from trainer.data import DataError, load_splits

    t = point.train
    try:
        _, held, _, report = load_splits(t.data, t.format, t.eval_data, t.eval_fraction)
    except DataError as err:
        raise UserError(str(err)) from err
    if not held:
        raise UserError(
            f"{cfg.data}: no held-out records ({report.summary()}); raise eval_fraction or pass eval_data"
        )
    digest = hashlib.sha256(Path(t.data).read_bytes()).hexdigest() if Path(t.data).is_file() else None
    rows = []
    for conv in held[: cfg.prompts]:
        *before, question, answer = conv
        context = [{"role": turn.role, "content": turn.text} for turn in before]
        key = hashlib.sha256(json.dumps([context, question.text]).encode()).hexdigest()[:16]
        rows.append({"benchmark": cfg.name, "key": key, "category": None, "turns": [question.text],
                     "context": context, "reference": [answer.text], "source": data_label(cfg.data),
                     "source_sha256": digest, "meta": {"split": "held-out"}})  # fmt: skip
    return rows


def store_prompts(store: Store, rows: list[dict[str, Any]], benchmark: str) -> None:
    """Insert the held-out prompts; a benchmark of this name holding other prompts is refused."""
    from arena.benchmarks import insert_prompts

    with store.session() as session:
        present = set(session.scalars(select(Prompt.key).where(Prompt.benchmark == benchmark)))
        other = present - {r["key"] for r in rows}
        if other:
            raise UserError(
                f"benchmark {benchmark!r} already holds {len(other)} other prompt(s) (different data or "
                "eval_fraction): give the sweep another name"
            )
        insert_prompts(session, rows)


def prompt_template(template: str) -> str:
    """The training text of one Alpaca record under the trainer's template, as recorded with
    every contestant (`{instruction}` and `{input}` are joined as the trainer's Alpaca reader does)."""
    from trainer.data import Turn, segments

    if template != "guanaco":
        return "the tokenizer's chat template; user turn: {instruction}\n\n{input}; assistant turn: {output}"
    conv = (Turn("user", "{instruction}\n\n{input}"), Turn("assistant", "{output}"))
    return "".join(text for text, _ in segments(conv, None, template)) + "<eos>"


def register(store: Store, cfg: SweepConfig, point: Point, record: dict[str, Any]) -> None:
    """The point as a contestant: its adapter on the base at the bits it was trained in, with its
    settings, training metrics and prompt template in the metadata (the release's provenance)."""
    from arena.models import add_local

    t = point.train
    keys = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "bits", "quant_type", "double_quant",
            "learning_rate", "max_steps", "batch_size", "grad_accum", "max_seq_len", "train_on", "template",
            "format", "seed")  # fmt: skip
    sweep = {
        "sweep": cfg.name,
        "settings": point.settings,
        "train": {k: getattr(t, k) for k in keys},
        "base": data_label(cfg.base) if Path(cfg.base).exists() else cfg.base,
        "data": data_label(cfg.data),
        "prompt_template": prompt_template(t.template),
        "metrics": {
            k: record.get(k)
            for k in (
                "trainable_params",
                "train_seconds",
                "time_estimated",
                "peak_memory_mb",
                "memory",
                "eval_loss",
                "steps",
            )
        },  # fmt: skip
    }
    with store.session() as session:
        contestant = add_local(session, point.name, base=t.base, adapter=str(point.folder), bits=t.bits,
                               prompt_format="guanaco" if t.template == "guanaco" else "chat")  # fmt: skip
        contestant.meta = {**contestant.meta, "sweep": sweep}


# ---------------------------------------------------------------- judging


def judge_config(cfg: SweepConfig, base_url: str | None, model: str) -> Any:
    """The judge's settings; a budget needs a known price (a local endpoint costs nothing)."""
    from arena.openai_client import ClientConfig
    from judges.judge import JudgeConfig, load_prices, price_for
    from judges.templates import load_template

    default = str(SMALL_JUDGE_TEMPLATE) if cfg.local_judge else "qlora-vicuna"
    try:
        template = load_template(cfg.template or default)
        price = price_for(model, load_prices(cfg.costs))
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err
    local = bool(base_url) and any(host in base_url for host in ("127.0.0.1", "localhost"))
    if price is None and cfg.budget_usd is not None and not local:
        raise UserError(f"no price known for {model!r}, so the budget cannot be kept: add it with costs")
    client = ClientConfig(model=model, base_url=base_url, api_key_env=cfg.api_key_env,
                          concurrency=cfg.concurrency)  # fmt: skip
    return JudgeConfig(client=client, template=template, name=cfg.judge, max_tokens=cfg.judge_max_tokens,
                       seed=cfg.seed, price=price)  # fmt: skip


@contextmanager
def judge_endpoint(cfg: SweepConfig) -> Iterator[tuple[str | None, str]]:
    """(base URL, model name): the configured endpoint, or the embedded SmolLM2 on 127.0.0.1."""
    if not cfg.local_judge:
        yield cfg.base_url, cfg.judge_model
        return
    from arena.models import ensure_smollm2
    from judges.serve import serve_local, served_name

    path = ensure_smollm2()
    with serve_local(path) as base_url:
        yield base_url, served_name(path)


def judge_all(store: Store, cfg: SweepConfig, names: list[str]) -> str:
    """Judge every pair of contestants on every held-out prompt, both orders, what is missing only.
    Returns a line saying what was done."""
    from arena.openai_client import ChatClient
    from arena.tournament import (
        Limits,
        done_keys,
        judge_matches,
        load_entries,
        missing,
        once,
        plan_matches,
        select_pairs,
    )
    from judges.judge import FatalJudgeError, Judge

    entries = load_entries(store, cfg.name, names)
    matches = plan_matches(entries, select_pairs(names, "all"), orders="both", seed=cfg.seed)
    with judge_endpoint(cfg) as (base_url, model):
        jcfg = judge_config(cfg, base_url, model)
        todo = missing(matches, done_keys(store, jcfg.name, jcfg.template.hash))
        if not todo:
            return f"all {len(matches)} judgments already stored ({jcfg.name})"
        with store.session() as session:
            run_id = start_run(session, "judge", f"{cfg.name}:{jcfg.name}",
                               {"sweep": cfg.name, "models": names, "judge_model": model,
                                "template_id": jcfg.template.id, "template_hash": jcfg.template.hash,
                                "orders": "both", "to_judge": len(todo)}).id  # fmt: skip

        async def run() -> Any:
            async with ChatClient(jcfg.client) as client:
                return await judge_matches(store, Judge(jcfg, client), once(todo), run_id=run_id,
                                           limits=Limits(budget_usd=cfg.budget_usd), concurrency=cfg.concurrency)  # fmt: skip

        status = "failed"
        try:
            tally = asyncio.run(run())
            status = "stopped" if tally.stopped else "done"
        except FatalJudgeError as err:
            raise UserError(f"the judge endpoint refused the call: {err}") from err
        finally:
            with store.session() as session:
                finish_run(session, run_id, status)
    stopped = f"; stopped: {tally.stopped}, rerun to continue" if tally.stopped else ""
    return (f"judged {tally.sent} of {len(todo)} missing matches with {jcfg.name}: {tally.ok} ok, "
            f"{tally.unparsed} unparsed, {tally.errors} errors, ${tally.spent_usd:.4f}{stopped}")  # fmt: skip


# ---------------------------------------------------------------- the table and the plot


def results_table(store: Store, cfg: SweepConfig, records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per setting: its grid values, trainable parameters, training time, peak memory,
    eval loss, and the Bradley-Terry rating with its 95% interval (prompts resampled); the rank
    counts only models whose interval lies wholly above (intervals that overlap share a rank)."""
    from arena.ratings import rate

    names = [r["name"] for r in records]
    frame = store.judgments(benchmark=cfg.name, judge=cfg.judge, models=names)
    header: dict[str, Any] = {"benchmark": cfg.name, "judge": cfg.judge, "method": "bt",
                              "judgments": len(frame), "used": 0, "models": len(names)}  # fmt: skip
    ratings = None
    if not frame.empty:
        try:
            ratings = rate(frame, "bt", bootstrap=cfg.bootstrap, resample="prompt", seed=cfg.seed)
            header = ratings.attrs["header"]
        except ValueError as err:  # nothing readable yet: the table still shows the training side
            log.warning("no rating yet: %s", err)
    by_model = {} if ratings is None else ratings.set_index("model").to_dict("index")
    rows = []
    for record in records:
        rated = by_model.get(record["name"], {})
        rows.append({
            "model": record["name"], **{k: _cell(v) for k, v in record["settings"].items()},
            "trainable_params": record["trainable_params"], "train_seconds": record["train_seconds"],
            "peak_memory_mb": record["peak_memory_mb"], "eval_loss": record["eval_loss"],
            "rating": rated.get("rating"), "lower": rated.get("lower"), "upper": rated.get("upper"),
            "rank": rated.get("rank"), "matches": rated.get("matches", 0),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs["header"] = {**header, "params": {**header.get("params", {}), "memory": records[0]["memory"]}}
    return table


def _cell(value: Any) -> Any:
    return "+".join(value) if isinstance(value, list) else value


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table formatted for people (thousands separators, 3-decimal losses, rating [interval])."""
    shown = table.copy()
    shown["trainable_params"] = [f"{v:,}" for v in table["trainable_params"]]
    shown["train_seconds"] = [_num(v, "{:.1f}") for v in table["train_seconds"]]
    shown["peak_memory_mb"] = [_num(v, "{:,.0f}") for v in table["peak_memory_mb"]]
    shown["eval_loss"] = [_num(v, "{:.3f}") for v in table["eval_loss"]]
    shown["rating"] = [
        "-" if pd.isna(r) else f"{r:.0f} [{lo:.0f}, {hi:.0f}]"
        for r, lo, hi in zip(table["rating"], table["lower"], table["upper"], strict=True)
    ]
    shown["rank"] = [_num(v, "{:.0f}") for v in table["rank"]]
    shown = shown.drop(columns=["lower", "upper"])
    shown.attrs = table.attrs
    return shown


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None or pd.isna(value) else fmt.format(value)


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Rating (with its interval) against trainable parameters and against training time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rated = table[table["rating"].notna()]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120, sharey=True)
    for ax, column, xlabel in ((axes[0], "trainable_params", "trainable parameters"),
                               (axes[1], "train_seconds", "training time (s)")):  # fmt: skip
        shown = rated[rated[column].notna()]
        errors = [shown["rating"] - shown["lower"], shown["upper"] - shown["rating"]]
        ax.errorbar(shown[column], shown["rating"], yerr=errors, fmt="o", capsize=4, color="#3182bd")
        for _, row in shown.iterrows():
            ax.annotate(row["model"], (row[column], row["rating"]), textcoords="offset points", xytext=(5, 5),
                        fontsize=7)  # fmt: skip
        ax.set_xscale("log" if column == "trainable_params" else "linear")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Bradley-Terry rating (95% interval)")
    header = table.attrs.get("header", {})
    fig.suptitle(f"{header.get('benchmark')}: judge {header.get('judge')}, {header.get('used', 0)} judgments",
                 fontsize=10)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------- dry run


@dataclass
class Plan:
    """What a sweep would do from where it stands."""

    trainings: int
    trained: int
    generations: int
    generated: int
    judgments: int
    judged: int
    judge_calls_usd: float | None
    prompt_tokens: int

    def lines(self, cfg: SweepConfig) -> list[str]:
        out = [
            f"trainings: {self.trainings} ({self.trained} finished, {self.trainings - self.trained} to train)",
            f"generations: {self.generations} ({self.generated} stored, {self.generations - self.generated} to generate)",
        ]  # fmt: skip
        if cfg.human:
            out.append(f"judgments: none sent; {self.judgments} battles queued for the human arena")
            return out
        out.append(f"judgments: {self.judgments} ({self.judged} stored, {self.judgments - self.judged} to judge, "
                   f"both orders of every pair)")  # fmt: skip
        if self.judge_calls_usd is None:
            out.append(f"judge {cfg.judge_model}: cost unknown (no price; add one with costs)")
        else:
            out.append(
                f"judge {cfg.judge_model}: estimated at most ${self.judge_calls_usd:,.2f} for the judgments left "
                f"(about {self.prompt_tokens:,} prompt tokens with answers at {cfg.max_new_tokens} tokens, "
                f"outputs at {cfg.judge_max_tokens} tokens)"
            )
        return out


def plan(store: Store, cfg: SweepConfig, grid: list[Point], rows: list[dict[str, Any]]) -> Plan:
    """Count what is left without training, generating or calling anything. The cost bound takes
    every answer at `max_new_tokens` (4 characters a token) and every judge output at its cap."""
    from judges.judge import CHARS_PER_TOKEN, Case, Judge

    names = [p.name for p in grid]
    with store.session() as session:
        generated = session.scalar(
            select(func.count(Generation.id))
            .join(Contestant, Contestant.id == Generation.contestant_id)
            .join(Prompt, Prompt.id == Generation.prompt_id)
            .where(Contestant.name.in_(names), Prompt.benchmark == cfg.name)
        )
    pairs = len(names) * (len(names) - 1) // 2
    judgments = pairs * len(rows) * 2
    judged = 0
    cost, tokens = None, 0
    if not cfg.human:
        jcfg = judge_config(cfg, cfg.base_url if not cfg.local_judge else "http://127.0.0.1", cfg.judge_model)
        frame = store.judgments(benchmark=cfg.name, judge=jcfg.name, models=names)
        judged = int(((frame.template_hash == jcfg.template.hash) & (frame.status != "error")).sum())
        judge = Judge(jcfg, client=None)
        answer = "word " * (cfg.max_new_tokens * CHARS_PER_TOKEN // 5)
        per_prompt = [
            judge.estimate(Case(r["turns"][0], answer, answer, reference=r["reference"][0])) for r in rows
        ]
        left = (judgments - judged) / max(judgments, 1)
        tokens = int(sum(e[0] for e in per_prompt) * pairs * 2 * left)
        cost = None if jcfg.price is None else sum(e[2] for e in per_prompt) * pairs * 2 * left
    return Plan(len(grid), sum(finished(p) is not None for p in grid), len(names) * len(rows), generated or 0,
                judgments, judged, cost, tokens)  # fmt: skip


# ---------------------------------------------------------------- the workflow


@dataclass
class SweepResult:
    table: pd.DataFrame
    csv: Path
    markdown: Path
    plot: Path | None
    messages: list[str]


def run_sweep(store: Store, cfg: SweepConfig) -> SweepResult:
    """Train every point (or reuse it), register, generate, judge (or queue for people), rate,
    and write the table (CSV, Markdown) and the plot into `cfg.out`."""
    from arena.backends import GenerateParams
    from arena.generate import generate

    grid = points(cfg)
    rows = held_out_prompts(cfg, grid[0])
    with store.session() as session:
        run_id = start_run(session, "sweep", cfg.name, cfg.to_dict()).id
    status, messages = "failed", []
    try:
        store_prompts(store, rows, cfg.name)
        records = []
        for number, point in enumerate(grid, start=1):
            state = "finished" if finished(point) else "training"
            print(f"[{number}/{len(grid)}] {point.name}: {state}", flush=True)
            records.append(train_point(point))
            register(store, cfg, point, records[-1])
        names = [p.name for p in grid]
        params = GenerateParams(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                seed=cfg.seed, batch_size=cfg.batch_size)  # fmt: skip
        generate(store, cfg.name, names, cfg.backend, params)
        if cfg.human:
            messages.append(f"answers queued for people: guanaco app --benchmark {cfg.name} (then rerun the "
                            "sweep to rate the votes)")  # fmt: skip
        else:
            messages.append(judge_all(store, cfg, names))
        result = write_outputs(store, cfg, records, messages)
        status = "done"
        return result
    finally:
        with store.session() as session:
            finish_run(session, run_id, status)


def write_outputs(
    store: Store, cfg: SweepConfig, records: list[dict[str, Any]], messages: list[str]
) -> SweepResult:
    from arena.leaderboard import render

    table = results_table(store, cfg, records)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    csv, markdown = out / "sweep.csv", out / "sweep.md"
    csv.write_text(render(table, "csv"), encoding="utf-8")
    markdown.write_text(render(display_table(table), "md"), encoding="utf-8")
    figure = plot(table, out / "sweep.png") if table["rating"].notna().any() else None
    return SweepResult(table, csv, markdown, figure, messages)


def dry_run(store: Store, cfg: SweepConfig) -> list[str]:
    """The plan's lines: trainings, generations, judgments and the judge's estimated dollars."""
    grid = points(cfg)
    rows = held_out_prompts(cfg, grid[0])
    head = f"sweep {cfg.name}: {len(grid)} settings x {len(rows)} held-out prompts of {data_label(cfg.data)}"
    return [head, *(f"  {p.name}" for p in grid), *plan(store, cfg, grid, rows).lines(cfg)]
