"""The sweep's judging stage: every pair of points on every held-out prompt, both orders, through
the tournament's planner and recorded runner (shared with `guanaco judge`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from arena.store import Store
from arena.sweep.config import SweepConfig
from foundations.errors import UserError
from foundations.paths import DATA_DIR

SMALL_JUDGE_TEMPLATE = DATA_DIR / "samples" / "small-judge.yaml"
EMBEDDED_JUDGE = "smollm2 (embedded)"


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
    from judges.client import ClientConfig, is_local_url
    from judges.judge import JudgeConfig, load_prices, price_for

    template = judge_template(cfg)
    try:
        price = price_for(model, load_prices(cfg.costs))
    except ValueError as err:
        raise UserError(str(err)) from err
    if price is None and cfg.budget_usd is not None and not is_local_url(base_url):
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
    from arena.tournament.plan import done_keys, load_entries, missing, plan_matches, select_pairs
    from arena.tournament.run_record import judge_recorded
    from arena.tournament.runner import Limits, once

    entries = load_entries(store, cfg.name, names)
    matches = plan_matches(entries, select_pairs(names, "all"), orders="both", seed=cfg.seed)
    template = judge_template(cfg)
    todo = missing(matches, done_keys(store, cfg.judge, template.hash))
    if not todo:  # checked before a local judge is started: a finished sweep reruns in seconds
        return f"all {len(matches)} judgments already stored ({cfg.judge})"
    with judge_endpoint(cfg) as (base_url, model):
        jcfg = judge_config(cfg, base_url, model)
        record = {"sweep": cfg.name, "models": names, "judge_model": EMBEDDED_JUDGE if cfg.local_judge else cfg.judge_model,
                  "template_id": template.id, "template_hash": template.hash, "orders": "both", "to_judge": len(todo)}  # fmt: skip
        _, tally = judge_recorded(store, jcfg, once(todo), len(todo), limits=Limits(budget_usd=cfg.budget_usd),
                                  name=f"{cfg.name}:{jcfg.name}", config=record)  # fmt: skip
    stopped = f"; stopped: {tally.stopped}, rerun to continue" if tally.stopped else ""
    return (f"judged {tally.sent} of {len(todo)} missing matches with {jcfg.name}: {tally.ok} ok, "
            f"{tally.unparsed} unparsed, {tally.errors} errors, ${tally.spent_usd:.4f}{stopped}")  # fmt: skip
