"""`guanaco import qlora-release DIR` and `guanaco import fastchat FILE...`: released evaluations."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("import", help="import released evaluations")  # options on each kind
    kinds = parser.add_subparsers(dest="import_kind", metavar="KIND", required=True)
    qlora = kinds.add_parser(
        "qlora-release",
        parents=[common],
        help="the QLoRA paper's eval release: prompts, generations, GPT-4 judgments",
    )
    qlora.add_argument(
        "path", type=Path, metavar="DIR", help="the release folder (qlora-eval/) or a mirror holding it"
    )
    qlora.add_argument(
        "--strict",
        action="store_true",
        help="refuse the whole import when a judgment's answer ids match no released answer",
    )
    qlora.set_defaults(func=run_qlora)
    fastchat = kinds.add_parser(
        "fastchat",
        parents=[common],
        help="FastChat model_answer / model_judgment JSONL and clean_battle JSON files",
    )
    fastchat.add_argument("files", nargs="+", type=Path, metavar="FILE")
    fastchat.add_argument(
        "--benchmark", default="mt-bench", help="benchmark the question ids refer to (default mt-bench)"
    )
    fastchat.add_argument(
        "--from",
        dest="mirror",
        type=Path,
        default=None,
        help="local mirror for the benchmark's questions (default: the fetch cache)",
    )
    fastchat.set_defaults(func=run_fastchat)


def _guarded(inputs: list[Path], call: Callable[[], object]) -> int:
    """Run an import whose `inputs` exist (checked first, so a mistyped path creates no store); a
    bad or missing file becomes one line saying nothing was stored."""
    from arena.imports import ImportConflict
    from foundations.errors import UserError
    from foundations.sources import BenchmarkFileError

    missing = [str(path) for path in inputs if not path.exists()]
    if missing:
        raise UserError(f"{', '.join(missing)}: no such file or folder; nothing was imported")
    try:
        call()
    except (BenchmarkFileError, ImportConflict, FileNotFoundError, KeyError) as err:
        problem = (
            f"{err.filename}: no such file" if isinstance(err, FileNotFoundError) and err.filename else err
        )
        raise UserError(f"{problem}; nothing was imported (the store is as it was)") from err
    return 0


def run_qlora(args: argparse.Namespace) -> int:
    from arena.import_qlora import import_qlora_release
    from arena.store import Store

    return _guarded([args.path], lambda: import_qlora_release(Store(args.db), args.path, strict=args.strict))


def run_fastchat(args: argparse.Namespace) -> int:
    from arena.import_fastchat import import_fastchat
    from arena.store import Store

    return _guarded(
        args.files, lambda: import_fastchat(Store(args.db), args.files, args.benchmark, args.mirror)
    )
