"""`python -m trainer` / `accelerate launch -m trainer`: the same flags as `guanaco train`."""

from __future__ import annotations

import argparse
import logging
import sys

from trainer.config import ConfigError, add_arguments, from_args
from trainer.data import DataError
from trainer.train import TrainError, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer", description="Guanaco-style 4-bit QLoRA training."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        train(from_args(args), resume=args.resume is not None)
    except (ConfigError, DataError, TrainError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
