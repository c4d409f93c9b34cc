"""`python -m trainer` / `accelerate launch -m trainer`: the same flags as `guanaco train`."""

from __future__ import annotations

import argparse
import logging
import sys

from foundations.errors import UserError
from trainer.config import add_arguments, from_args
from trainer.train import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer", description="Guanaco-style 4-bit QLoRA training."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        train(from_args(args), resume=args.resume is not None)
    except UserError as err:  # ConfigError, DataError, TrainError, a model that cannot be loaded
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
