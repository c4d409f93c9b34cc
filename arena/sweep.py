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

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from arena.store import Contestant, Generation, Prompt, Store, finish_run, start_run
from arena.sweep_config import Point, SweepConfig, points
from arena.sweep_report import display_table, plot, results_table
from foundations.errors import UserError
from foundations.paths import DATA_DIR

log = logging.getLogger(__name__)

MARKER = "SWEEP_DONE.json"
"""Written last, atomically, into a point's folder: its presence means the point is finished."""
SMALL_JUDGE_TEMPLATE = DATA_DIR / "samples" / "small-judge.yaml"
EMBEDDED_JUDGE = "smollm2 (embedded)"
MEMORY_NOTE = {
    "gpu": "peak GPU memory allocated by torch",
    "cpu": "peak resident memory of the process (includes the Python runtime)",
}


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
    from trainer.formats import DataError
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
    from trainer.data import load_splits
    from trainer.formats import DataError

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
    from trainer.encode import segments
    from trainer.formats import Turn

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


def judge_template(cfg: SweepConfig) -> Any:
    """The judge's template: as configured, else the paper's `qlora-vicuna` (the small-judge one
    for the embedded judge, which cannot follow the paper's)."""
    from judges.templates import load_template

    default = str(SMALL_JUDGE_TEMPLATE) if cfg.local_judge else "qlora-vicuna"
    try:
        return load_template(cfg.template or default)
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err


def judge_config(cfg: SweepConfig, base_url: str | None, model: str) -> Any:
    """The judge's settings; a budget needs a known price (a local endpoint costs nothing)."""
    from judges.client import ClientConfig
    from judges.judge import JudgeConfig, load_prices, price_for

    template = judge_template(cfg)
    try:
        price = price_for(model, load_prices(cfg.costs))
    except ValueError as err:
        raise UserError(str(err)) from err
    if price is None and cfg.budget_usd is not None and not is_local(base_url):
        raise UserError(f"no price known for {model!r}, so the budget cannot be kept: add it with costs")
    client = ClientConfig(model=model, base_url=base_url, api_key_env=cfg.api_key_env,
                          concurrency=cfg.concurrency)  # fmt: skip
    return JudgeConfig(client=client, template=template, name=cfg.judge, max_tokens=cfg.judge_max_tokens,
                       seed=cfg.seed, price=price)  # fmt: skip


def is_local(base_url: str | None) -> bool:
    """An endpoint on this machine, which charges nothing."""
    from urllib.parse import urlparse

    return bool(base_url) and urlparse(base_url).hostname in ("127.0.0.1", "localhost", "::1")


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
    from judges.client import ChatClient
    from judges.judge import FatalJudgeError, Judge

    entries = load_entries(store, cfg.name, names)
    matches = plan_matches(entries, select_pairs(names, "all"), orders="both", seed=cfg.seed)
    template = judge_template(cfg)
    todo = missing(matches, done_keys(store, cfg.judge, template.hash))
    if not todo:  # checked before a local judge is started: a finished sweep reruns in seconds
        return f"all {len(matches)} judgments already stored ({cfg.judge})"
    with judge_endpoint(cfg) as (base_url, model):
        jcfg = judge_config(cfg, base_url, model)
        with store.session() as session:
            run_id = start_run(session, "judge", f"{cfg.name}:{jcfg.name}",
                               {"sweep": cfg.name, "models": names, "judge_model": EMBEDDED_JUDGE if cfg.local_judge else cfg.judge_model,
                                "template_id": template.id,
                                "template_hash": template.hash, "orders": "both", "to_judge": len(todo)}).id  # fmt: skip

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
    judge: str
    local: bool

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
        if self.local:
            out.append(f"judge {self.judge} on a local endpoint: no charge")
        elif self.judge_calls_usd is None:
            out.append(f"judge {self.judge}: cost unknown (no price; add one with costs)")
        else:
            out.append(
                f"judge {self.judge}: estimated at most ${self.judge_calls_usd:,.2f} for the judgments left "
                f"(about {self.prompt_tokens:,} prompt tokens with answers at {cfg.max_new_tokens} tokens, "
                f"outputs at {cfg.judge_max_tokens} tokens)"
            )
        return out


def plan(store: Store, cfg: SweepConfig, grid: list[Point], rows: list[dict[str, Any]]) -> Plan:
    """Count what is left without training, generating or calling anything. The cost bound takes
    every answer at `max_new_tokens` (a stand-in of that many words, each a token or more as the
    judge's tokenizer counts) and every judge output at its cap."""
    from judges.judge import Case, Judge

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
    base_url = "http://127.0.0.1" if cfg.local_judge else cfg.base_url
    model = EMBEDDED_JUDGE if cfg.local_judge else cfg.judge_model
    if not cfg.human:
        jcfg = judge_config(cfg, base_url, model)
        frame = store.judgments(benchmark=cfg.name, judge=jcfg.name, models=names)
        judged = int(((frame.template_hash == jcfg.template.hash) & (frame.status != "error")).sum())
        judge = Judge(jcfg, client=None)
        answer = "word " * cfg.max_new_tokens
        per_prompt = [
            judge.estimate(Case(r["turns"][0], answer, answer, reference=r["reference"][0])) for r in rows
        ]
        left = (judgments - judged) / max(judgments, 1)
        tokens = int(sum(e[0] for e in per_prompt) * pairs * 2 * left)
        cost = None if jcfg.price is None else sum(e[2] for e in per_prompt) * pairs * 2 * left
    return Plan(len(grid), sum(finished(p) is not None for p in grid), len(names) * len(rows), generated or 0,
                judgments, judged, cost, tokens, model, is_local(base_url))  # fmt: skip


# ---------------------------------------------------------------- the workflow


@dataclass
class SweepResult:
    table: pd.DataFrame
    csv: Path
    markdown: Path
    plot: Path | None
    messages: list[str]


def provenance(cfg: SweepConfig) -> dict[str, Any]:
    """The configuration as the run record keeps it: local paths by their last part only, since
    run records go into releases."""
    local = {k: Path(getattr(cfg, k)).name for k in ("base", "data", "costs", "template")
             if getattr(cfg, k) and Path(getattr(cfg, k)).exists()}  # fmt: skip
    return {**cfg.to_dict(), **local, "out": Path(cfg.out).name}


def run_sweep(store: Store, cfg: SweepConfig) -> SweepResult:
    """Train every point (or reuse it), register, generate, judge (or queue for people), rate,
    and write the table (CSV, Markdown) and the plot into `cfg.out`."""
    from arena.backends import GenerateParams
    from arena.generate import generate

    grid = points(cfg)
    rows = held_out_prompts(cfg, grid[0])
    with store.session() as session:
        run_id = start_run(session, "sweep", cfg.name, provenance(cfg)).id
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
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        with store.session() as session:
            finish_run(session, run_id, status)


def write_outputs(
    store: Store, cfg: SweepConfig, records: list[dict[str, Any]], messages: list[str]
) -> SweepResult:
    from arena.leaderboard import render

    table = results_table(store, cfg, records, None if cfg.human else judge_template(cfg).hash)
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
    if len(rows) < cfg.prompts:
        head += f" (asked for {cfg.prompts}: the held-out split has {len(rows)})"
    return [head, *(f"  {p.name}" for p in grid), *plan(store, cfg, grid, rows).lines(cfg)]
