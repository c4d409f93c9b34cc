"""The sweep's dry run: what is left to train, generate and judge, and the judge's cost bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arena.query.generations import count_generations
from arena.query.judgments import read_judgments
from arena.store import Store
from arena.sweep.config import Point, SweepConfig, points
from arena.sweep.judging import EMBEDDED_JUDGE, judge_config
from arena.sweep.prompts import data_label, held_out_prompts
from arena.sweep.training import finished


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
    from judges.client import is_local_url
    from judges.judge import Case, Judge

    names = [p.name for p in grid]
    with store.session() as session:
        generated = count_generations(session, cfg.name, names)
    pairs = len(names) * (len(names) - 1) // 2
    judgments = pairs * len(rows) * 2
    judged = 0
    cost, tokens = None, 0
    base_url = "http://127.0.0.1" if cfg.local_judge else cfg.base_url
    model = EMBEDDED_JUDGE if cfg.local_judge else cfg.judge_model
    if not cfg.human:
        jcfg = judge_config(cfg, base_url, model)
        frame = read_judgments(store, benchmark=cfg.name, judge_names=[jcfg.name], models=names)
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
                judgments, judged, cost, tokens, model, is_local_url(base_url))  # fmt: skip


def dry_run(store: Store, cfg: SweepConfig) -> list[str]:
    """The plan's lines: trainings, generations, judgments and the judge's estimated dollars."""
    grid = points(cfg)
    rows = held_out_prompts(cfg, grid[0])
    head = f"sweep {cfg.name}: {len(grid)} settings x {len(rows)} held-out prompts of {data_label(cfg.data)}"
    if len(rows) < cfg.prompts:
        head += f" (asked for {cfg.prompts}: the held-out split has {len(rows)})"
    return [head, *(f"  {p.name}" for p in grid), *plan(store, cfg, grid, rows).lines(cfg)]
