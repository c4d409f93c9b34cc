"""The sweep workflow: train every point, register, generate, judge (or queue for people), rate,
and write the table and plot, under a `sweep` run record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from arena.query.runs import finish_run, start_run
from arena.store import Store
from arena.sweep.config import SweepConfig, points
from arena.sweep.contestants import register
from arena.sweep.judging import judge_all, judge_template
from arena.sweep.prompts import held_out_prompts, store_prompts
from arena.sweep.report import display_table, plot, results_table
from arena.sweep.training import finished, train_point


@dataclass
class SweepResult:
    table: pd.DataFrame
    csv: Path
    markdown: Path
    plot: Path | None
    messages: list[str]


def provenance(cfg: SweepConfig) -> dict[str, Any]:
    """The configuration as the run record keeps it (`asdict`): local paths by their last part
    only and the judge endpoint without credentials, since run records go into releases."""
    from arena.redact import safe_url

    local = {k: Path(getattr(cfg, k)).name for k in ("base", "data", "costs", "template")
             if getattr(cfg, k) and Path(getattr(cfg, k)).exists()}  # fmt: skip
    endpoint = safe_url(cfg.base_url) if cfg.base_url else None
    return {**cfg.to_dict(), **local, "out": Path(cfg.out).name, "base_url": endpoint}


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
