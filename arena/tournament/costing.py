"""What a judging run would send and cost at most, without sending anything (`guanaco judge --dry-run`)."""

from __future__ import annotations

from dataclasses import dataclass

from arena.tournament.config import TournamentConfig
from arena.tournament.plan import Match
from judges.judge import Judge


@dataclass(frozen=True)
class Estimate:
    """The calls and tokens of the matches left, and their cost bound (None: no price known)."""

    planned: int
    to_judge: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


def estimate(judge: Judge, matches: list[Match], todo: list[Match]) -> Estimate:
    """Count the calls and tokens `todo` needs: prompts exactly (or at most, see
    :mod:`judges.tokens`), every completion at its limit."""
    estimates = [judge.estimate(m.case) for m in todo]
    prompt, completion, cost = (sum(e[i] for e in estimates) for i in range(3))
    calls = sum(len(judge.calls(m.case)) for m in todo)
    priced = None if judge.cfg.price is None else cost
    return Estimate(len(matches), len(todo), calls, prompt, completion, priced)


def describe(judge: Judge, found: Estimate, config: TournamentConfig) -> list[str]:
    """The dry run's report, one line each: the judge and template, its settings, the matches,
    calls and tokens, the cost bound and the limits."""
    from judges.tokens import exact_for

    cfg, price = judge.cfg, judge.cfg.price
    lines = [
        f"judge {cfg.name} ({cfg.client.model}), template {cfg.template.id} [{cfg.template.hash[:12]}], "
        f"turn {cfg.template.turn}",
        "settings: " + ", ".join(f"{k}={v}" for k, v in judge.provenance().items()),
        f"matches planned: {found.planned}; already judged: {found.planned - found.to_judge}; "
        f"to judge: {found.to_judge}",
    ]
    counted = "counted with tiktoken" if exact_for(cfg.client.model) else "at most: UTF-8 bytes"
    lines.append(f"judge calls: {found.calls}; prompt tokens: {found.prompt_tokens:,} ({counted}); "
                 f"completion tokens: at most {found.completion_tokens:,}")  # fmt: skip
    if found.cost_usd is None:
        lines.append(f"cost: unknown (no price for {cfg.client.model!r}; add one with --costs)")
    else:
        lines.append(f"cost: at most ${found.cost_usd:,.2f} (prices per 1k tokens: ${price.prompt} prompt, "
                     f"${price.completion} completion)")  # fmt: skip
    if config.budget_usd is not None or config.max_judgments is not None:
        lines.append(f"limits: budget ${config.budget_usd}, max judgments {config.max_judgments}")
    return lines
