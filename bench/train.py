"""Speed and memory of one small QLoRA job: this trainer against a plain TRL SFTTrainer + peft baseline.

Both sides load the same 4-bit base with the same LoRA, train on the same conversations (the
project's OASST1 sample, Guanaco format, loss on every token) with the same batch, length cap,
optimizer and steps. Each side runs in its own process, so peak RSS is its own. Throughput counts
real tokens only (attention mask), so padding is work that earns nothing: the trainer's length
grouping is expected to win by padding less.

    .venv/bin/python bench/train.py                     # SmolLM2-135M, 4-bit, CPU
    .venv/bin/python bench/train.py --base PATH --steps 12 --batch-size 8

Writes docs/bench/train.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "bench" / "train.md"


def job_config(args: argparse.Namespace, out: Path):
    from trainer.config import build

    return build("smoke", overrides={
        "base": args.base, "out": str(out), "max_steps": args.steps, "batch_size": args.batch_size,
        "grad_accum": 1, "max_seq_len": args.seq_len, "learning_rate": 2e-4, "lora_r": 8, "lora_alpha": 16.0,
        "lora_dropout": 0.05, "optim": "adamw_torch", "gradient_checkpointing": False, "group_by_length": True,
        "max_eval_samples": 0,
    })  # fmt: skip


def run_ours(args: argparse.Namespace, out: Path) -> dict[str, float]:
    from trainer.train import Loop

    loop = Loop(job_config(args, out))
    loop.train_step()  # warm-up, not timed (as on the TRL side)
    started, tokens, padded = time.perf_counter(), 0, 0
    for _ in range(args.steps - 1):
        padded += loop.micro_batch(loop.step)["attention_mask"].numel()
        tokens += loop.train_step()["real_tokens"]
    return {"seconds": time.perf_counter() - started, "real_tokens": tokens, "padded_tokens": padded}


def run_trl(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """TRL's SFTTrainer with its defaults, told only the settings the two jobs share."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from trainer import model as qmodel
    from trainer.data import load_splits, segments
    from trainer.train import load_tokenizer

    cfg = job_config(args, out)
    tokenizer = load_tokenizer(cfg)
    conversations = load_splits(cfg.data)[0]
    texts = ["".join(text for text, _ in segments(conv, tokenizer, "guanaco")) for conv in conversations]
    model = AutoModelForCausalLM.from_pretrained(
        qmodel.resolve_base(cfg.base),
        quantization_config=qmodel.quantization_config(cfg),
        dtype=qmodel.compute_dtype(cfg),
    )
    clock: dict[str, float] = {}

    class Clock(TrainerCallback):
        """Times steps 2..N: the first step is warm-up, as on this trainer's side."""

        def on_step_end(self, _args, state, *_, **__):
            if state.global_step == 1:
                clock["start"], clock["tokens"] = time.perf_counter(), state.num_input_tokens_seen

        def on_train_end(self, *_, **__):
            clock["end"] = time.perf_counter()

    sft = SFTConfig(
        output_dir=str(out), max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=1, learning_rate=cfg.learning_rate, lr_scheduler_type="constant",
        max_grad_norm=cfg.max_grad_norm, adam_beta2=cfg.adam_beta2, optim="adamw_torch", max_length=cfg.max_seq_len,
        bf16=False, use_cpu=True, gradient_checkpointing=False, save_strategy="no", report_to="none",
        logging_steps=1, seed=cfg.seed, include_num_input_tokens_seen="non_padding", dataloader_num_workers=0,
    )  # fmt: skip
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")  # fmt: skip
    trainer = SFTTrainer(model=model, args=sft, train_dataset=Dataset.from_dict({"text": texts}),
                         processing_class=tokenizer, peft_config=lora, callbacks=[Clock()])  # fmt: skip
    trainer.train()
    return {
        "seconds": clock["end"] - clock["start"],
        "real_tokens": trainer.state.num_input_tokens_seen - clock["tokens"],
    }


def child(args: argparse.Namespace) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = (run_ours if args.child == "ours" else run_trl)(args, Path(tmp) / "run")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.result).write_text(json.dumps(result))


def measure(side: str, args: argparse.Namespace, result: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", side, "--result", str(result), "--base", args.base,
               "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]  # fmt: skip
    print(f"running {side} ...", flush=True)
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(result.read_text())


def best(results: list[dict[str, float]]) -> dict[str, float]:
    """The fastest repeat's figures, with the highest peak memory seen in any repeat."""
    fastest = max(results, key=lambda r: r["real_tokens"] / r["seconds"])
    return {**fastest, "peak_rss_mb": max(r["peak_rss_mb"] for r in results)}


def report(args: argparse.Namespace, ours: dict[str, float], trl: dict[str, float]) -> str:
    rows = {"this trainer": ours, "TRL SFTTrainer + peft": trl}
    speed = {name: r["real_tokens"] / r["seconds"] for name, r in rows.items()}
    lines = [
        "## Trainer: 4-bit QLoRA job, this trainer vs TRL SFTTrainer",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/train.py', *sys.argv[1:]])}`",
        "",
        f"Base `{args.base}` in 4-bit NF4 + double quantization, LoRA r 8 on all linear layers, "
        f"{args.steps} steps of batch {args.batch_size} (the first is warm-up and not timed), at most {args.seq_len} tokens, the project's OASST1 "
        f"sample in Guanaco format, AdamW, float32 compute on the CPU ({os.cpu_count()} cores). Real tokens "
        f"exclude padding. Each side ran {args.repeats} times, alternating; the fastest run counts. Peak "
        "memory is the largest maximum RSS of a side's processes (model load included).",
        "",
        "| run | real tokens | seconds | real tokens/s | peak RSS (MiB) |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {r['real_tokens']:.0f} | {r['seconds']:.1f} | {speed[name]:.1f} | {r['peak_rss_mb']:.0f} |"
            for name, r in rows.items()
        ),  # fmt: skip
        "",
        f"- throughput ratio (this trainer / TRL): **{speed['this trainer'] / speed['TRL SFTTrainer + peft']:.2f}x**",
        f"- peak memory ratio (this trainer / TRL): **{ours['peak_rss_mb'] / trl['peak_rss_mb']:.2f}x**",
        f"- padding in this trainer's batches: {1 - ours['real_tokens'] / ours['padded_tokens']:.1%} of tokens "
        "(length grouping)",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="smollm2")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="runs per side; the fastest counts")
    parser.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import tempfile

    runs: dict[str, list[dict[str, float]]] = {"ours": [], "trl": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # alternate the sides, so a busy spell hits both alike
            for side, results in runs.items():
                results.append(measure(side, args, Path(tmp) / f"{side}-{repeat}.json"))
    ours, trl = (best(results) for results in runs.values())
    text = report(args, ours, trl)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
