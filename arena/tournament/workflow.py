"""The judging workflow (`guanaco judge`): plan a tournament's matches, then judge what is missing
under a run record, or say what that would send and cost.

Each turn the template covers is judged on its own (MT-bench's turn 1 and turn 2 have their own
templates); a turn nobody answered is an error only when it was asked for by itself. Rerunning
the same config resumes: nothing already judged is asked again.
"""

from __future__ import annotations

from collections.abc import Callable

from arena.store import Store
from arena.tournament.config import TournamentConfig
from arena.tournament.costing import describe, estimate
from arena.tournament.persistence import tournament_key, tournament_spend
from arena.tournament.plan import done_keys, load_entries, missing, plan_matches, select_pairs
from arena.tournament.run_record import judge_recorded, stored_config
from arena.tournament.runner import Limits
from arena.tournament.schedule import batches
from foundations.errors import UserError
from judges.judge import Judge, JudgeConfig, Price, load_prices, price_for
from judges.templates import Template

Say = Callable[[str], None]


def judge_tournament(
    store: Store, config: TournamentConfig, *, dry_run: bool = False, say: Say = print
) -> None:
    """Judge every chosen match of each turn the template covers (`dry_run`: send nothing, say
    what would be sent and its cost bound). `say` receives the report, line by line."""
    for template in turn_templates(config):
        required = config.turns != "all" or template.turn == 1
        judge_turn(store, config, template, required=required, dry_run=dry_run, say=say)


def turn_templates(config: TournamentConfig) -> list[Template]:
    """The template of each turn to judge: the configured one, else the benchmark's own."""
    from judges.templates import DEFAULT_BY_BENCHMARK, templates_for_turns

    name = config.template or DEFAULT_BY_BENCHMARK.get(config.benchmark, "mt-bench-pair")
    try:
        return templates_for_turns(name, config.turns)
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err


def judge_turn(
    store: Store, config: TournamentConfig, template: Template, *, required: bool, dry_run: bool, say: Say
) -> None:
    """Plan, then judge (or estimate) the matches of one template, i.e. one conversation turn."""
    try:
        prices = load_prices(config.costs)
        entries = load_entries(store, config.benchmark, config.models, template)
        pairs = select_pairs(config.models, config.pairs)
        matches = plan_matches(entries, pairs, prompts_per_pair=config.prompts_per_pair, orders=config.orders,
                               seed=config.seed)  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err
    models = ", ".join(config.models)
    if not matches:
        problem = (
            f"no prompt of benchmark {config.benchmark!r} has turn-{template.turn} answers from two of: "
        )
        if required:
            raise UserError(problem + models)
        say(f"{problem}{models}: turn {template.turn} not judged")
        return
    cfg = judge_config(config, template, price_for(config.judge_model, prices))
    todo = missing(matches, done_keys(store, cfg.name, template.hash))
    if dry_run:
        judge = Judge(cfg, client=None)
        for line in describe(judge, estimate(judge, matches, todo), config):
            say(line)
        return
    if not todo:
        say(f"all {len(matches)} matches already judged by {cfg.name} with template {cfg.template.id}")
        return
    tournament = tournament_key(config.benchmark, cfg.name, cfg.template.hash, config.models)
    spent_before = tournament_spend(store, tournament)
    if spent_before:
        say(f"earlier runs of this tournament spent ${spent_before:.4f}; --budget-usd counts it")
    limits = Limits(
        budget_usd=config.budget_usd, max_judgments=config.max_judgments, spent_before=spent_before
    )
    total = len(todo) if config.max_judgments is None else min(len(todo), config.max_judgments)
    source, on_result = batches(store, cfg, config.models, todo, config.pairs, config.seed)
    run_id, tally = judge_recorded(store, cfg, source, total, limits=limits, name=f"{config.benchmark}:{cfg.name}",
                                   config=stored_config(config, cfg, len(todo)), tournament=tournament,
                                   on_result=on_result)  # fmt: skip
    say(f"run {run_id}: stored {tally.stored} judgments ({tally.ok} ok, {tally.unparsed} unparsed, "
        f"{tally.errors} errors), spent ${tally.spent_usd:.4f}")  # fmt: skip
    if tally.stopped:
        say(f"stopped: {tally.stopped}; {len(todo) - tally.sent} matches left: rerun to continue")
    if tally.errors:
        say(
            f"{tally.errors} judgments failed after retries and were stored as errors: rerun to ask them again"
        )


def judge_config(config: TournamentConfig, template: Template, price: Price | None) -> JudgeConfig:
    """The judge's settings for one template; a budget needs a known price (or a local model)."""
    from judges.client import ClientConfig, is_local_url

    if price is None and config.budget_usd is not None and not is_local_url(config.base_url):
        raise UserError(
            f"no price known for {config.judge_model!r}, so --budget-usd cannot be kept: add it to a JSON "
            f"price table passed with --costs (or GUANACO_JUDGE_COSTS)"
        )
    client = ClientConfig(model=config.judge_model, base_url=config.base_url, api_key_env=config.api_key_env,
                          concurrency=config.concurrency, timeout_s=config.timeout_s)  # fmt: skip
    return JudgeConfig(client=client, template=template, name=config.judge_name, temperature=config.temperature,
                       max_tokens=config.max_tokens, seed=config.seed, repair=config.repair, price=price)  # fmt: skip
