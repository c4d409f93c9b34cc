"""`guanaco data fetch NAME... [--from DIR]` and `guanaco data list`: the benchmark files' cache."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("data", help="fetch and list benchmark files")  # options on each action
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", parents=[common], help="download benchmark files, verified by sha256")
    fetch.add_argument("names", nargs="+", metavar="NAME", help="vicuna, oa, mt-bench or judge-templates")
    fetch.add_argument(
        "--from",
        dest="mirror",
        type=Path,
        default=None,
        help="a local mirror laid out like the public release (e.g. ../shared/data)",
    )
    fetch.set_defaults(func=run_fetch)
    listing = actions.add_parser(
        "list", parents=[common], help="list registered files and whether they are cached"
    )
    listing.set_defaults(func=run_list)


def run_fetch(args: argparse.Namespace) -> int:
    from foundations.errors import UserError
    from foundations.sources import BenchmarkFileError, fetch, registry

    unknown = [n for n in args.names if n not in registry()["benchmarks"]]
    if unknown:
        raise UserError(
            f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(registry()['benchmarks'])}"
        )
    for name in args.names:
        try:
            for path in fetch(name, args.mirror):
                print(f"{name}: {path}")
        except (BenchmarkFileError, FileNotFoundError, ConnectionError) as err:
            raise UserError(str(err)) from None
    return 0


def run_list(args: argparse.Namespace) -> int:
    from foundations.sources import benchmark_files, cache_path, registry, sha256_file, source_file

    for name, spec in registry()["benchmarks"].items():
        print(f"{name}: {spec['description']}")
        for key in benchmark_files(name):
            entry, path = source_file(key), cache_path(key)
            state = "missing"
            if path.is_file():
                state = "cached" if sha256_file(path) == entry.sha256 else "cached, CHECKSUM MISMATCH"
            print(f"  {key:<55} {state:<10} {entry.license}\n    {entry.url}")
    return 0
