"""`guanaco train` (QLoRA or QA-LoRA, `--method`) and `guanaco merge` (adapter onto or into the quantized base)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from trainer.config import add_arguments

    train = subparsers.add_parser(
        "train",
        parents=[common],
        help="train a 4-bit LoRA chatbot (presets from the QLoRA paper, or `smoke` on the CPU)",
        description="Presets < --config YAML < flags. Examples: --preset smoke --out runs/smoke; "
        "--preset guanaco-7b --base huggyllama/llama-7b --data oasst1; --resume runs/x --max-steps 3000.",
    )
    add_arguments(train)
    train.set_defaults(func=run_train)
    merge = subparsers.add_parser(
        "merge",
        parents=[common],
        help="merge a run's adapter onto its dequantized 4-bit base (QLoRA), or into its INT zero points (QA-LoRA)",
        description="QLoRA runs: a 16/32-bit checkpoint, or with --bits a group-wise INT4/3/2 model "
        "(post-training quantization). QA-LoRA runs: the adapter folded into the zero points; codes and "
        "scales unchanged (docs/qalora.md).",
    )
    merge.add_argument("run", type=Path, help="run folder written by guanaco train")
    merge.add_argument("--out", type=Path, required=True, help="folder for the merged checkpoint")
    merge.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="cast the merged weights")
    merge.add_argument(
        "--method",
        choices=["qlora", "qalora"],
        help="the run's method (checked against it): qalora folds the adapter into INT zero points",
    )
    merge.add_argument(
        "--bits", type=int, help="QLoRA runs: quantize the merged model group-wise to 4, 3 or 2 bits"
    )
    merge.add_argument(
        "--group-size", type=int, choices=[32, 64, 128], help="with --bits: input channels per group (32)"
    )
    merge.set_defaults(func=run_merge)


def run_train(args: argparse.Namespace) -> int:
    from arena.query.runs import finish_run, start_run
    from arena.store import Store
    from trainer.config import from_args
    from trainer.train import train

    cfg = from_args(args)  # the trainer's errors are UserErrors: the CLI prints them as one line
    store = Store(args.db)
    with store.session() as session:
        run_id = start_run(session, "train", cfg.out, cfg.to_dict()).id
    status = "failed"
    try:
        metrics = train(cfg, resume=args.resume is not None)
        status = "done"
    finally:
        with store.session() as session:
            finish_run(session, run_id, status)
    print(f"adapter in {cfg.out}: step {metrics['step']}, train loss {metrics['train_loss']:.4f}, "
          f"eval loss {metrics['eval_loss'] if metrics['eval_loss'] is None else round(metrics['eval_loss'], 4)}")  # fmt: skip
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from trainer.merge import merge
    from trainer.qalora_merge import check_request, merge_low_bit, run_config, wants_low_bit

    if wants_low_bit(args.run, args.bits):
        out = merge_low_bit(args.run, args.out, args.method, args.bits, args.group_size, args.dtype)
        print(f"low-bit merged model in {out} (register it with guanaco models add NAME --qalora {out})")
        return 0
    check_request(run_config(args.run), args.run, args.method, None, args.group_size)
    out = merge(args.run, args.out, args.dtype)
    print(f"merged checkpoint in {out}")
    return 0
