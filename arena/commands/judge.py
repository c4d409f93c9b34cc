"""`guanaco judge`: a judge model compares contestants' answers, both orders, cached and resumable.

Ctrl-C or SIGTERM stops sending and lets the calls in flight finish and be stored (they are paid
for); a second one abandons them, still storing every reply already received."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from foundations.errors import UserError

if TYPE_CHECKING:  # heavy modules load only when the command runs
    from arena.store import Store
    from arena.tournament import Limits, Match, Tally
    from judges.judge import Judge, JudgeConfig, Outcome, Price
    from judges.templates import Template

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class RunConfig:
    """What a judging run stores about how it was made: an allowlist, so that nothing else on the
    command line (the database URL and its password, local file paths) ever reaches the store or
    a release. The endpoint is kept without credentials or query."""

    benchmark: str
    models: list[str]
    judge_model: str
    judge_name: str
    endpoint: str | None
    api_key_env: str
    template_id: str
    template_hash: str
    pairs: str
    prompts_per_pair: int | None
    orders: str
    concurrency: int
    budget_usd: float | None
    max_judgments: int | None
    price_per_1k: dict[str, float] | None
    judge_settings: dict[str, Any]
    """The settings actually sent (template defaults or flags) and where their defaults came from."""
    timeout_s: float
    repair: bool
    seed: int
    to_judge: int


def run_config(
    args: argparse.Namespace, cfg: JudgeConfig, models: list[str], to_judge: int
) -> dict[str, Any]:
    from arena.redact import safe_url
    from judges.judge import Judge

    price = cfg.price
    return asdict(
        RunConfig(
            benchmark=args.benchmark,
            models=models,
            judge_model=cfg.client.model,
            judge_name=cfg.name,
            endpoint=safe_url(args.base_url) if args.base_url else None,
            api_key_env=args.api_key_env,
            template_id=cfg.template.id,
            template_hash=cfg.template.hash,
            pairs=args.pairs,
            prompts_per_pair=args.prompts_per_pair,
            orders=args.orders,
            concurrency=args.concurrency,
            budget_usd=args.budget_usd,
            max_judgments=args.max_judgments,
            price_per_1k=None if price is None else {"prompt": price.prompt, "completion": price.completion},
            judge_settings=Judge(cfg, client=None).provenance(),
            timeout_s=cfg.client.timeout_s,
            repair=cfg.repair,
            seed=args.seed,
            to_judge=to_judge,
        )  # fmt: skip
    )


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "judge",
        parents=[common],
        help="judge contestants' answers with GPT-4 or any OpenAI-compatible model",
        description="Judge every chosen match (both orders by default) with an OpenAI-compatible model. "
        "Each judgment is stored as it completes: rerun the same command to resume; nothing is asked twice.",
    )
    p.add_argument("--benchmark", required=True, help="vicuna, oa, mt-bench, or any benchmark in the store")
    p.add_argument("--models", required=True, help="comma-separated contestant names")
    p.add_argument("--judge-model", default="gpt-4", help="the judge model as the endpoint names it")
    p.add_argument("--judge-name", help="name stored with each judgment (default: --judge-model)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument(
        "--template",
        help="qlora-vicuna | qlora-oa | relative | mt-bench-pair | mt-bench-single | "
        "mt-bench-pair-multi-turn | mt-bench-single-multi-turn (MT-bench turn 2) | FILE.yaml "
        "(default: the benchmark's own: qlora-vicuna, qlora-oa, mt-bench-pair)",
    )
    p.add_argument(
        "--turns",
        default="all",
        choices=("all", "1", "2"),
        help="MT-bench: judge turn 1, turn 2 (FastChat's multi-turn templates) or all (default); "
        "single-turn templates judge turn 1",
    )
    p.add_argument("--pairs", default="all", help="all | baseline:NAME | active")
    p.add_argument("--prompts-per-pair", type=int, help="judge each pair on N seeded-random prompts")
    p.add_argument("--orders", default="both", choices=("both", "one"), help="judge both slot orders or one")
    p.add_argument("--concurrency", type=int, default=32, help="judge calls in flight")
    p.add_argument(
        "--budget-usd",
        type=float,
        help="stop before this tournament (same benchmark, models, judge and template) has spent more "
        "than this, counting earlier runs",
    )
    p.add_argument("--max-judgments", type=int, help="stop after sending this many judgments in this run")
    p.add_argument("--costs", help="JSON price table overriding judges/costs.json (USD per 1k tokens)")
    p.add_argument(
        "--temperature",
        type=float,
        help="judge sampling temperature (default: the template source's: QLoRA 0.2, FastChat 0)",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        help="judge output limit per call (default: the template source's: QLoRA 1024, FastChat 2048)",
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds for a call's whole reply before retrying"
    )
    p.add_argument("--repair", action="store_true", help="re-ask once when a verdict cannot be read")
    p.add_argument("--dry-run", action="store_true", help="print calls, estimated tokens and cost, and stop")
    p.add_argument("--seed", type=int, default=0, help="for prompt sampling, slot orders and the judge")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    if not args.verbose:  # one line per HTTP request would bury the progress bar
        for name in ("httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from judges.templates import DEFAULT_BY_BENCHMARK, templates_for_turns

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if len(models) < 2:
        raise UserError("--models needs at least two contestants, comma-separated")
    name = args.template or DEFAULT_BY_BENCHMARK.get(args.benchmark, "mt-bench-pair")
    try:
        templates = templates_for_turns(name, args.turns)
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err
    return max(run_template(args, models, t, required=args.turns != "all" or t.turn == 1) for t in templates)


def run_template(
    args: argparse.Namespace, models: list[str], template: Template, required: bool = True
) -> int:
    """Plan, then judge (or dry-run) the matches of one template, i.e. one conversation turn; a turn
    nobody answered is an error only when it was asked for by itself (`required`)."""
    from arena.store import Store
    from arena.tournament import done_keys, load_entries, missing, plan_matches, select_pairs
    from judges.judge import Judge, load_prices, price_for

    try:
        prices = load_prices(args.costs)
        store = Store(args.db)
        entries = load_entries(store, args.benchmark, models, template)
        pairs = select_pairs(models, args.pairs)
        matches = plan_matches(
            entries, pairs, prompts_per_pair=args.prompts_per_pair, orders=args.orders, seed=args.seed
        )
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err
    if not matches:
        problem = f"no prompt of benchmark {args.benchmark!r} has turn-{template.turn} answers from two of: "
        if required:
            raise UserError(problem + ", ".join(models))
        print(f"{problem}{', '.join(models)}: turn {template.turn} not judged")
        return 0
    cfg = judge_config(args, template, price_for(args.judge_model, prices))
    todo = missing(matches, done_keys(store, cfg.name, template.hash))
    if args.dry_run:
        return dry_run(Judge(cfg, client=None), matches, todo, args)
    return judge_run(store, cfg, models, matches, todo, args)


def judge_config(args: argparse.Namespace, template: Template, price: Price | None) -> JudgeConfig:
    """The judge's settings from the command line; a budget needs a known price (or a local model)."""
    from judges.client import ClientConfig, is_local_url
    from judges.judge import JudgeConfig

    local = is_local_url(args.base_url)
    if price is None and args.budget_usd is not None and not local:
        raise UserError(
            f"no price known for {args.judge_model!r}, so --budget-usd cannot be kept: add it to a JSON "
            f"price table passed with --costs (or GUANACO_JUDGE_COSTS)"
        )
    client = ClientConfig(
        model=args.judge_model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
    )
    return JudgeConfig(
        client=client,
        template=template,
        name=args.judge_name or args.judge_model,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
        repair=args.repair,
        price=price,
    )


def dry_run(judge: Judge, matches: list[Match], todo: list[Match], args: argparse.Namespace) -> int:
    """Print what a run would send and what it could cost at most; send nothing."""
    estimates = [judge.estimate(m.case) for m in todo]
    calls = sum(len(judge.calls(m.case)) for m in todo)
    prompt, completion, cost = (sum(e[i] for e in estimates) for i in range(3))
    price = judge.cfg.price
    print(f"judge {judge.cfg.name} ({judge.cfg.client.model}), template {judge.cfg.template.id} "
          f"[{judge.cfg.template.hash[:12]}], turn {judge.cfg.template.turn}")  # fmt: skip
    print("settings: " + ", ".join(f"{k}={v}" for k, v in judge.provenance().items()))
    print(
        f"matches planned: {len(matches)}; already judged: {len(matches) - len(todo)}; to judge: {len(todo)}"
    )
    from judges.tokens import exact_for

    counted = "counted with tiktoken" if exact_for(judge.cfg.client.model) else "at most: UTF-8 bytes"
    print(
        f"judge calls: {calls}; prompt tokens: {prompt:,} ({counted}); completion tokens: at most {completion:,}"
    )
    if price is None:
        print(f"cost: unknown (no price for {judge.cfg.client.model!r}; add one with --costs)")
    else:
        print(
            f"cost: at most ${cost:,.2f} (prices per 1k tokens: ${price.prompt} prompt, ${price.completion} completion)"
        )
    if args.budget_usd is not None or args.max_judgments is not None:
        print(f"limits: budget ${args.budget_usd}, max judgments {args.max_judgments}")
    return 0


def judge_run(
    store: Store,
    cfg: JudgeConfig,
    models: list[str],
    matches: list[Match],
    todo: list[Match],
    args: argparse.Namespace,
) -> int:
    """Judge what is missing under a run record, with a progress bar; report what was done."""
    from tqdm import tqdm

    from arena.query.runs import finish_run, start_run
    from arena.tournament import Limits, tournament_key, tournament_spend
    from judges.client import api_key
    from judges.judge import FatalJudgeError

    if not todo:
        print(f"all {len(matches)} matches already judged by {cfg.name} with template {cfg.template.id}")
        return 0
    api_key(cfg.client)  # no key: say so before a run is recorded
    tournament = tournament_key(args.benchmark, cfg.name, cfg.template.hash, models)
    spent_before = tournament_spend(store, tournament)
    if spent_before:
        print(f"earlier runs of this tournament spent ${spent_before:.4f}; --budget-usd counts it")
    config = run_config(args, cfg, models, len(todo))
    with store.session() as session:
        run_id = start_run(session, "judge", f"{args.benchmark}:{cfg.name}", config, tournament).id
    limits = Limits(budget_usd=args.budget_usd, max_judgments=args.max_judgments, spent_before=spent_before)
    total = len(todo) if args.max_judgments is None else min(len(todo), args.max_judgments)
    batches, on_result = _batches(store, cfg, models, todo, args)
    status = "failed"
    with tqdm(total=total, unit="judgment", desc="judging", file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            tally = asyncio.run(_run(store, cfg, batches, limits, run_id, bar, on_result, args.concurrency))
            if tally.stopped == "interrupted":
                raise KeyboardInterrupt
            status = "stopped" if tally.stopped else "done"
        except (KeyboardInterrupt, asyncio.CancelledError):  # cancelled: a second signal
            status = "interrupted"
            raise KeyboardInterrupt from None
        except FatalJudgeError as err:
            raise UserError(
                f"the judge endpoint refused the call or could not be reached: {err}; check --base-url, the "
                "key and --judge-model, then run the same command to resume"
            ) from err
        finally:
            with store.session() as session:
                finish_run(session, run_id, status)
    print(f"run {run_id}: stored {tally.stored} judgments ({tally.ok} ok, {tally.unparsed} unparsed, "
          f"{tally.errors} errors), spent ${tally.spent_usd:.4f}")  # fmt: skip
    if tally.stopped:
        print(f"stopped: {tally.stopped}; {len(todo) - tally.sent} matches left: rerun to continue")
    if tally.errors:
        print(
            f"{tally.errors} judgments failed after retries and were stored as errors: rerun to ask them again"
        )
    return 0


async def _run(
    store: Store,
    cfg: JudgeConfig,
    batches: Callable[[], list[Match]],
    limits: Limits,
    run_id: int,
    bar: Any,
    on_result: Callable[[Match, Outcome], None] | None,
    concurrency: int,
) -> Tally:
    from arena.tournament import judge_matches
    from judges.client import ChatClient
    from judges.judge import Judge

    interrupt = asyncio.Event()
    with _stop_signals(interrupt, bar):
        async with ChatClient(cfg.client) as client:
            return await judge_matches(
                store,
                Judge(cfg, client),
                batches,
                limits=limits,
                concurrency=concurrency,
                run_id=run_id,
                progress=bar,
                on_result=on_result,
                interrupt=interrupt,
            )


@contextmanager
def _stop_signals(interrupt: asyncio.Event, bar: Any) -> Iterator[None]:
    """While judging: the first SIGINT/SIGTERM sets `interrupt` (no new calls; those in flight are
    paid for, so they finish and are stored), the next cancels the run."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal() -> None:
        if interrupt.is_set():
            task.cancel()
            return
        interrupt.set()
        bar.write("stopping: finishing the calls in flight and storing them (again to abandon them)")

    previous = {}
    for sig in STOP_SIGNALS:
        handler = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, on_signal)
            previous[sig] = handler
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            if handler is not None:  # the handler before ours (the demo's stops its judge server)
                signal.signal(sig, handler)


def _batches(
    store: Store, cfg: JudgeConfig, models: list[str], todo: list[Match], args: argparse.Namespace
) -> tuple[Callable[[], list[Match]], Callable[[Match, Outcome], None] | None]:
    """All missing matches at once, or the active scheduler's batches fed by every result (and by
    the judgments stored before, when resuming)."""
    from arena.active import ActiveScheduler
    from arena.tournament import judged_scores, once, slot1_score

    if args.pairs != "active":
        return once(todo), None
    scheduler = ActiveScheduler(models, todo, batch=max(args.concurrency, 8), seed=args.seed)
    for model_1, model_2, score in judged_scores(store, cfg.name, cfg.template.hash, models):
        scheduler.record(model_1, model_2, score)

    def record(match: Match, outcome: Outcome) -> None:
        scheduler.record(match.model_1, match.model_2, slot1_score(outcome.status, outcome.verdict))

    return scheduler.next_batch, record
