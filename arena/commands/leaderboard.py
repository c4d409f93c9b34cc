"""`guanaco leaderboard`: rate the stored judgments and print or write the leaderboard."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from arena import leaderboard, ratings
from arena.battles import RESAMPLE_UNITS
from arena.query.judges import SELECTOR_HELP
from arena.query.judgments import read_judgments
from arena.store import Store
from foundations.errors import UserError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        parents=[common],
        help="rate stored judgments (Elo, Bradley-Terry, TrueSkill, relative) and print a leaderboard",
        description="Rate the stored judgments and print a leaderboard whose header says how it was made.",
    )
    pick = parser.add_argument_group("which judgments")
    pick.add_argument("--benchmark", help="benchmark name (vicuna, oa, mt-bench, ...); default: all")
    pick.add_argument("--judge", help=f"{SELECTOR_HELP}; default: all")
    pick.add_argument("--template", help="judge template id; default: all")
    pick.add_argument("--models", help="comma-separated models; default: all")
    pick.add_argument("--turn", type=int, choices=(1, 2), help="conversation turn (MT-bench); default: all")
    how = parser.add_argument_group("how to rate")
    how.add_argument("--method", choices=ratings.METHODS, default="elo", help="rating method (default: elo)")
    how.add_argument("--k", type=float, default=32.0, help="Elo K factor (default: 32)")
    how.add_argument("--orderings", type=int, default=10_000, help="Elo random orderings (default: 10000)")
    how.add_argument("--initial", type=float, default=1000.0, help="Elo starting rating (default: 1000)")
    how.add_argument("--seed", type=int, default=0, help="random seed for orderings and bootstraps")
    how.add_argument(
        "--bootstrap",
        type=int,
        help="bootstrap replicates for the interval (default: elo 100, bt/relative 1000)",
    )
    how.add_argument(
        "--resample", choices=RESAMPLE_UNITS, default="prompt",
        help="elo/bt bootstrap unit: a prompt with all its matches (default) or a single battle",
    )  # fmt: skip
    how.add_argument(
        "--replicate-orderings", type=int, default=100,
        help="elo: orderings averaged in each bootstrap replicate (default: 100)",
    )  # fmt: skip
    how.add_argument("--anchor", help="bt: model fixed at 1000 (default: mean rating 1000)")
    how.add_argument(
        "--control", metavar="FEATURES",
        help="bt: style control, e.g. length or length,markdown (headers, lists, bold): Chatbot Arena's "
        "contextual Bradley-Terry; ranks with and without control side by side, coefficients below",
    )  # fmt: skip
    how.add_argument("--reference", default="gpt-3.5-turbo", help="relative: reference model")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--format", choices=leaderboard.FORMATS, default="table", help="output format (default: table)"
    )
    out.add_argument("--out", type=Path, help="write the leaderboard to FILE instead of stdout")
    out.add_argument("--plot", type=Path, help="also write a PNG of ratings with intervals")
    out.add_argument("--heatmap", type=Path, help="also write a PNG heatmap of win rates")
    parser.set_defaults(func=run)


DEFAULT_BOOTSTRAP = {"elo": 100, "bt": 1000, "relative": 1000}
"""Elo's replicates each run `--replicate-orderings` orderings, so it takes fewer of them."""


def method_params(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword parameters of `arena.ratings.rate` that the chosen method takes."""
    boot = args.bootstrap if args.bootstrap is not None else DEFAULT_BOOTSTRAP.get(args.method, 0)
    return {
        "elo": {"k": args.k, "orderings": args.orderings, "seed": args.seed, "initial": args.initial,
                "bootstrap": boot, "resample": args.resample, "replicate_orderings": args.replicate_orderings,
                "progress": sys.stderr.isatty()},
        "online-elo": {"k": args.k, "initial": args.initial},
        "bt": {"bootstrap": boot, "resample": args.resample, "seed": args.seed, "anchor": args.anchor,
               "progress": sys.stderr.isatty()},
        "trueskill": {},
        "relative": {"reference": args.reference, "bootstrap": boot, "seed": args.seed},
    }[args.method]  # fmt: skip


def run(args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    frame = read_judgments(
        Store(args.db, create=False), benchmark=args.benchmark, judge=args.judge, models=models,
        template_id=args.template, turn=args.turn,
    )  # fmt: skip
    if frame.empty:
        raise UserError(
            f"no judgments in {args.db} for {_selection(args, models)}: import some first "
            "(guanaco import qlora-release DIR, guanaco import fastchat FILE...) or run a tournament"
        )
    try:
        table = (
            _styled(args, frame) if args.control else ratings.rate(frame, args.method, **method_params(args))
        )
    except ValueError as err:
        raise UserError(f"{err} (selection: {_selection(args, models)})") from err
    text = leaderboard.render(table, args.format)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.plot:
        print(f"wrote {leaderboard.plot_ratings(table, args.plot)}", file=sys.stderr)
    if args.heatmap:
        print(f"wrote {leaderboard.plot_win_rates(frame, args.heatmap)}", file=sys.stderr)
    return 0


def _styled(args: argparse.Namespace, frame: Any) -> Any:
    """Bradley-Terry with style control, on the texts of the judged answers."""
    from arena import style
    from arena.query.generations import answer_texts

    if args.method != "bt":
        raise UserError(
            f"--control works with --method bt (Chatbot Arena's contextual Bradley-Terry), not {args.method}"
        )
    with Store(args.db, create=False).session() as session:
        texts = answer_texts(session, args.benchmark)
    known = frame["generation_1"].isin(texts.index) & frame["generation_2"].isin(texts.index)
    if not known.all():  # a placeholder's style is unknown, not that of an empty answer
        print(f"style control leaves out {int((~known).sum())} judgments of answers whose text was never "
              "published (imported placeholders)", file=sys.stderr)  # fmt: skip
    params = {k: v for k, v in method_params(args).items()}
    return style.style_controlled_bt(frame[known], texts, args.control, **params)


def _selection(args: argparse.Namespace, models: list[str] | None) -> str:
    parts = [f"benchmark={args.benchmark or 'any'}", f"judge={args.judge or 'any'}"]
    if args.template:
        parts.append(f"template={args.template}")
    if args.turn:
        parts.append(f"turn={args.turn}")
    if models:
        parts.append(f"models={','.join(models)}")
    return " ".join(parts)
