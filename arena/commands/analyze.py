"""`guanaco analyze bias|length|agreement|lemons`: the paper's hand analyses as commands.

Each prints tidy tables (or writes them with `--format csv|json --out DIR`) and can draw a PNG
(`--plot FILE`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from arena.query.judges import SELECTOR_HELP
from foundations.errors import UserError


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "analyze", parents=[common], help="position/length bias, judge agreement, lemons",
        description="Analyses of the stored judgments: tables (printed, CSV, JSON) and plots (PNG).",
    )  # fmt: skip
    kinds = parser.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--benchmark", help="only this benchmark (vicuna, oa, ...)")
    shared.add_argument("--template", help="only judgments made with this judge template id")
    shared.add_argument("--format", default="table", choices=("table", "csv", "json"), help="output format")
    shared.add_argument("--out", type=Path, help="write the tables into this folder instead of printing")
    shared.add_argument("--plot", type=Path, metavar="PNG", help="also draw the analysis' plot into this PNG")
    shared.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap draws for intervals (default 1000)"
    )
    shared.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap")

    bias = kinds.add_parser("bias", parents=[common, shared], help="position bias: first/second wins, flips")
    bias.add_argument("--judge", help=f"judges, comma-separated, each {SELECTOR_HELP}; default all")
    bias.add_argument("--method", default="bt", help="rating method for the leaderboard effect (default bt)")
    bias.set_defaults(func=run_bias)

    length = kinds.add_parser(
        "length", parents=[common, shared],
        help="length bias: win rate by length gap, within model pairs, and with model strength controlled",
    )  # fmt: skip
    length.add_argument("--judge", help=f"judges, comma-separated, each {SELECTOR_HELP}; default all")
    length.add_argument(
        "--per-chars", type=float, default=1000.0, help="slope unit in characters (default 1000)"
    )
    length.set_defaults(func=run_length)

    agree = kinds.add_parser("agreement", parents=[common, shared], help="agreement between two judges")
    agree.add_argument(
        "--judges", required=True, help=f"two judges, comma-separated, e.g. gpt-4,human; each {SELECTOR_HELP}"
    )
    agree.add_argument(
        "--protocol", choices=("majority", "mt-bench"), default="majority",
        help="majority: each group's majority label per item, same order (default); mt-bench: MT-bench's "
        "definition (a model judge's two orders combined, inconsistent = tie, every human vote compared)",
    )  # fmt: skip
    agree.set_defaults(func=run_agreement)

    lemons = kinds.add_parser(
        "lemons", parents=[common, shared], help="a model's worst losses, failed prompts, tags"
    )
    lemons.add_argument("--model", required=True, help="the model whose losses to list")
    lemons.add_argument("--judge", help=f"judges, comma-separated, each {SELECTOR_HELP}; default all")
    lemons.add_argument("--top", type=int, default=20, help="how many losses to list (default 20)")
    lemons.add_argument("--reference", help="contestant every model is measured against for failed prompts")
    lemons.set_defaults(func=run_lemons)


def _store(args: argparse.Namespace):  # noqa: ANN202 - arena.store.Store
    from arena.store import Store

    return Store(args.db, create=False)


def _judges(spec: str | None) -> list[str]:
    return [name.strip() for name in spec.split(",") if name.strip()] if spec else []


def _finish(args: argparse.Namespace, tables: dict[str, pd.DataFrame], stem: str, plot: object = None) -> int:
    from arena.analysis.report import emit

    for path in emit(tables, args.format, args.out, stem):
        print(f"wrote {path}")
    if args.plot and plot is not None:
        print(f"wrote {plot(args.plot)}")
    return 0


def run_bias(args: argparse.Namespace) -> int:
    from arena.analysis import bias
    from arena.analysis.judgments import load_judgments
    from arena.analysis.report import plot_position

    frame = load_judgments(_store(args), args.benchmark, _judges(args.judge), args.template)
    pairs = bias.order_pairs(frame)
    position = bias.position_bias(frame)
    params = {"bootstrap": 0} if args.method == "bt" else {}
    tables = {
        "position": position,
        "position_by_pair": bias.position_bias(frame, ["pair"]),
        "position_by_category": bias.position_bias(frame, ["category"]),
        "order": bias.order_consistency(pairs),
        "order_by_pair": bias.order_consistency(pairs, ["pair"]),
        "order_by_category": bias.order_consistency(pairs, ["category"]),
        "leaderboard_effect": bias.leaderboard_effect(frame, pairs, args.method, **params),
    }
    return _finish(args, tables, "bias", lambda path: plot_position(position, path))


def run_length(args: argparse.Namespace) -> int:
    from arena.analysis import bias
    from arena.analysis.judgments import load_judgments
    from arena.analysis.report import plot_length
    from arena.query.generations import answer_texts

    store = _store(args)
    frame = load_judgments(store, args.benchmark, _judges(args.judge), args.template)
    with store.session() as session:
        texts = answer_texts(session, args.benchmark)
    frame = bias.with_lengths(frame, texts)
    table = bias.length_bias(frame)
    tables = {
        "length": table,
        "length_fit": bias.length_fit(frame, args.per_chars),
        "length_within_pairs": bias.length_within_pairs(frame, args.per_chars),
        "length_controlled": bias.length_effect(frame, texts, args.bootstrap, args.seed),
    }
    return _finish(args, tables, "length", lambda path: plot_length(table, path))


def run_agreement(args: argparse.Namespace) -> int:
    from arena.analysis import agreement
    from arena.analysis.judgments import load_judgments
    from arena.analysis.report import plot_confusion

    judges = _judges(args.judges)
    if len(judges) != 2 or judges[0] == judges[1]:
        raise UserError(
            f"--judges takes two different judges, comma-separated (e.g. gpt-4,human), not {args.judges!r}"
        )
    frame = load_judgments(_store(args), args.benchmark, judges, args.template)
    if args.protocol == "mt-bench":
        return _mt_bench_agreement(args, frame, judges)
    labels, unresolved = agreement.pooled_labels(frame)
    items = agreement.paired_items(labels, *judges)
    if items.empty:
        raise UserError(f"{judges[0]} and {judges[1]} judged no item in common (same prompt, pair and order)")
    matrix = agreement.confusion(items["label_a"], items["label_b"])
    tables = {
        "summary": pd.DataFrame(
            [
                {
                    "protocol": "majority",
                    "judge_a": judges[0],
                    "judge_b": judges[1],
                    "items": len(items),
                    "items_without_majority": unresolved,
                    "what": agreement.PROTOCOLS["majority"],
                }
            ]
        ),  # fmt: skip
        "verdicts": agreement.verdict_agreement(items, args.bootstrap, args.seed),
        "confusion": matrix.reset_index().rename(columns={"a": f"{judges[0]} \\ {judges[1]}"}),
        "annotators": agreement.annotator_agreement(frame, args.bootstrap, args.seed),
        "system": agreement.system_agreement(items, args.bootstrap, args.seed),
        "system_scores": agreement.system_scores(items),
    }
    return _finish(args, tables, "agreement", lambda path: plot_confusion(matrix, *judges, path))


def _mt_bench_agreement(args: argparse.Namespace, frame: pd.DataFrame, judges: list[str]) -> int:
    from arena.analysis import agreement
    from arena.analysis.report import plot_agreement

    table, left_out = agreement.mt_bench_agreement(frame, *judges, args.bootstrap, args.seed)
    if table.empty:
        raise UserError(
            f"{judges[0]} and {judges[1]} judged no pair of answers in common (a model judge needs both "
            f"orders of a pair; {left_out['one_order']} pairs were judged in one order only)"
        )
    summary = pd.DataFrame([{"protocol": "mt-bench", "judge_a": judges[0], "judge_b": judges[1],
                             "one_order_pairs_left_out": left_out["one_order"],
                             "inconsistent_pairs_as_tie": left_out["inconsistent"],
                             "what": agreement.PROTOCOLS["mt-bench"]}])  # fmt: skip
    tables = {"summary": summary, "agreement": table}
    return _finish(args, tables, "agreement", lambda path: plot_agreement(table, path))


def run_lemons(args: argparse.Namespace) -> int:
    from arena.analysis import lemons
    from arena.analysis.judgments import load_judgments
    from arena.analysis.report import plot_losses

    store = _store(args)
    frame = load_judgments(store, args.benchmark, _judges(args.judge), args.template)
    ratings = lemons.ratings_of(frame)
    losses = lemons.worst_losses(frame, ratings, args.model, args.top)
    with store.session() as session:
        losses = lemons.with_reasons(session, losses)
        tagged = lemons.tagged(session, args.benchmark, args.model)
    tables = {
        "worst_losses": losses,
        "failed_prompts": lemons.failed_prompts(frame, args.reference),
        "tagged": tagged,
    }
    return _finish(args, tables, "lemons", lambda path: plot_losses(losses, args.model, path))
