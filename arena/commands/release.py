"""`guanaco release --out DIR` writes the release bundle; `guanaco load-release DIR` reads one back."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    release = subparsers.add_parser(
        "release", parents=[common], help="export every generation and judgment as a JSONL/Parquet bundle",
        description="Write prompts, contestants, generations, judgments (votes included) and tags as JSONL "
        "and Parquet with a data card, FastChat battles and the leaderboards they reproduce.",
    )  # fmt: skip
    release.add_argument("--out", type=Path, required=True, help="folder to write the bundle into")
    release.add_argument("--benchmark", help="only this benchmark (vicuna, oa, ...)")
    release.add_argument("--format", default="jsonl,parquet", help="jsonl, parquet or both, comma-separated")
    release.add_argument("--real-names", action="store_true",
                         help="publish annotators' names as they are (by default each becomes annotator-<16 hex "
                         "of HMAC-SHA256(key, name)>, the key being a secret of the store, or "
                         "$GUANACO_PSEUDONYM_KEY, that never leaves it)")  # fmt: skip
    release.add_argument("--orderings", type=int, default=200,
                         help="Elo orderings and BT bootstrap draws for the bundled leaderboards (default 200)")  # fmt: skip
    release.set_defaults(func=run_release)

    load = subparsers.add_parser(
        "load-release", parents=[common], help="read a release bundle back into the store",
        description="Check a bundle's SHA256SUMS and import its records; records already stored are kept.",
    )  # fmt: skip
    load.add_argument("bundle", type=Path, help="the bundle's folder")
    load.set_defaults(func=run_load)


def run_release(args: argparse.Namespace) -> int:
    from arena.release.config import ReleaseConfig
    from arena.release.export import export_bundle
    from arena.store import Store

    config = ReleaseConfig.from_flags(args.benchmark, args.format, args.real_names, args.orderings)
    files = export_bundle(Store(args.db, create=False), args.out, config, progress=True)
    print(f"wrote {len(files)} files to {args.out} (data card: {args.out / 'README.md'})")
    return 0


def run_load(args: argparse.Namespace) -> int:
    from arena.release.load import import_bundle
    from arena.store import Store

    counts = import_bundle(Store(args.db), args.bundle)
    print("new records: " + ", ".join(f"{table} {n}" for table, n in counts.items()))
    return 0
