"""QA-LoRA against QLoRA on the embedded SmolLM2-135M: held-out perplexity after merging to low bits.

Both adapters train on the same conversations (the project's OASST1 sample, Guanaco format) with the
same LoRA rank, learning rate, batch, length cap and steps. Then, on the project's held-out
OASST-format text (data/samples/oasst_heldout.jsonl, written for this):
  (a) the base, unquantized;            (b) QLoRA merged onto its dequantized NF4 base (16-bit);
  (c) (b) quantized group-wise to INT4/3/2 with the same quantizer QA-LoRA uses (post-training);
  (d) QA-LoRA trained on an INT4/3/2 base and merged into its zero points (no post-training step);
and, for reference, (e) the base quantized to INT4/3/2 with no training. For each: trainable
parameters, training time, size on disk (float16 for everything not quantized) and greedy generation
tokens/s (weights held as codes and dequantized per forward, and dequantized once at load).

    .venv/bin/python bench/qalora.py                    # 20 steps, batch 2 x 128 tokens, group 32
    .venv/bin/python bench/qalora.py --steps 4 --bits 4  # a quick look

Writes docs/bench/qalora.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REPORT = ROOT / "docs" / "bench" / "qalora.md"
HELD_OUT = ROOT / "data" / "samples" / "oasst_heldout.jsonl"
PROMPT = "### Human: How do I keep basil alive on a windowsill?### Assistant:"


def job_config(args: argparse.Namespace, out: Path, method: str, bits: int):
    from trainer.config import build

    extra = {"group_size": args.group_size} if method == "qalora" else {}
    return build("smoke", overrides={
        "base": args.base, "out": str(out), "method": method, "bits": bits, **extra, "max_steps": args.steps,
        "batch_size": args.batch_size, "grad_accum": 1, "max_seq_len": args.seq_len, "learning_rate": args.lr,
        "lora_r": 8, "lora_alpha": 16.0, "lora_dropout": 0.05, "optim": "adamw_torch",
        "gradient_checkpointing": False, "max_eval_samples": 0, "eval_steps": 10**6, "save_steps": 10**6,
    })  # fmt: skip


def train_run(args: argparse.Namespace, out: Path, method: str, bits: int) -> dict[str, Any]:
    """Train one adapter; times every optimizer step after the first (warm-up)."""
    from trainer.train import Loop

    loop = Loop(job_config(args, out, method, bits))
    loop.train_step()
    started = time.perf_counter()
    for _ in range(args.steps - 1):
        loop.train_step()
    seconds = time.perf_counter() - started
    loop.save_outputs(loop.metrics())
    trainable = loop.footprint["trainable_params"]
    del loop
    return {"train_s_per_step": seconds / max(args.steps - 1, 1), "trainable": trainable}


def held_out_examples(tokenizer: Any, seq_len: int) -> list[Any]:
    from trainer.data import load_splits
    from trainer.encode import Encoder

    conversations, _, report, _ = load_splits(str(HELD_OUT), eval_source=str(HELD_OUT))
    encoder = Encoder(tokenizer, "guanaco", "all", seq_len)
    return encoder.encode_all(conversations, report)


@torch.no_grad()
def perplexity(model: Any, examples: list[Any], pad_id: int) -> float:
    """exp(mean next-token loss) over every token of the held-out conversations."""
    from trainer.batches import collate, target_count
    from trainer.loss import add_token_loss
    from trainer.train import token_loss

    add_token_loss(model)
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), 4):
        batch = collate(examples[start : start + 4], pad_id)
        total += float(token_loss(model, batch))
        count += target_count(batch)
    return math.exp(total / count)


@torch.no_grad()
def tokens_per_s(model: Any, tokenizer: Any, new_tokens: int, repeats: int) -> tuple[float, float]:
    """Greedy decoding of `new_tokens` tokens (no early stop), after one warm-up: median and spread."""
    ids = tokenizer(PROMPT, return_tensors="pt")
    options = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False,
               "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id}  # fmt: skip
    model.generate(**ids, **{**options, "max_new_tokens": 4, "min_new_tokens": 4})
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.generate(**ids, **options)
        rates.append(new_tokens / (time.perf_counter() - started))
    return statistics.median(rates), (max(rates) - min(rates)) / 2


def saved16(model: Any, folder: Path) -> tuple[Any, int]:
    """`model` written with float16 weights, read back in float32 (as the low-bit files are), and its size."""
    from transformers import AutoModelForCausalLM

    from trainer.qalora_format import size_on_disk

    model.half().save_pretrained(folder)  # in place, so tied embeddings stay one tensor
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), size_on_disk(folder)


def saved_low_bit(model: Any, tokenizer: Any, folder: Path, source: str) -> tuple[Any, int]:
    """`model` written in the low-bit format (float16 for what is not quantized), and read back."""
    from trainer.qalora_format import load_quantized, save_quantized, size_on_disk

    save_quantized(model, tokenizer, folder, source, "float16")
    return load_quantized(folder), size_on_disk(folder)


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer import qalora
    from trainer.merge import merged_model
    from trainer.model import resolve_base
    from trainer.qalora_format import load_quantized, size_on_disk
    from trainer.qalora_merge import merge_low_bit

    base_path = resolve_base(args.base)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = held_out_examples(tokenizer, 512)
    rows: dict[str, dict[str, Any]] = {}

    def row(key: str, model: Any, size: int, **extra: Any) -> None:
        rows[key] = {"ppl": perplexity(model, examples, pad), "size_mb": size / 2**20, **extra}
        print(key, {k: round(v, 3) if isinstance(v, float) else v for k, v in rows[key].items()}, flush=True)

    def fresh_base() -> Any:
        return AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)

    base, size = saved16(fresh_base(), work / "a")
    row("a", base, size, tok_s=tokens_per_s(base, tokenizer, args.new_tokens, args.repeats))
    for bits in args.bits:
        model = fresh_base()
        qalora.quantize_model(model, bits, args.group_size)
        row(f"e{bits}", *saved_low_bit(model, tokenizer, work / f"e{bits}", "base-quantized"))

    qlora = train_run(args, work / "qlora", "qlora", 4)
    trained = {"trainable": qlora["trainable"], "train_s": qlora["train_s_per_step"]}
    merged, size = saved16(merged_model(work / "qlora"), work / "b")
    row("b", merged, size, **trained, tok_s=tokens_per_s(merged, tokenizer, args.new_tokens, args.repeats))
    for bits in args.bits:
        model = merged_model(work / "qlora")
        qalora.quantize_model(model, bits, args.group_size)
        row(
            f"c{bits}",
            *saved_low_bit(model, tokenizer, work / f"c{bits}", "qlora-merge-then-quantize"),
            **trained,
        )
    for bits in args.bits:
        run = train_run(args, work / f"qalora{bits}", "qalora", bits)
        out = merge_low_bit(work / f"qalora{bits}", work / f"d{bits}", "qalora", dtype="float16")
        held = load_quantized(out)
        extra: dict[str, Any] = {"trainable": run["trainable"], "train_s": run["train_s_per_step"]}
        if bits == args.bits[0]:
            extra["tok_s_codes"] = tokens_per_s(held, tokenizer, args.new_tokens, args.repeats)
            plain = load_quantized(out, dequantize=True)
            extra["tok_s"] = tokens_per_s(plain, tokenizer, args.new_tokens, args.repeats)
        row(f"d{bits}", held, size_on_disk(out), **extra)
    return {"rows": rows, "settings": {k: v for k, v in vars(args).items() if k != "write"}}


def fmt_rate(value: tuple[float, float] | None) -> str:
    return f"{value[0]:.1f} ± {value[1]:.1f}" if value else "-"


def report(result: dict[str, Any]) -> str:
    rows, s = result["rows"], result["settings"]
    names = {"a": "(a) base, unquantized", "b": "(b) QLoRA merged, 16-bit"}
    for bits in s["bits"]:
        names[f"c{bits}"] = f"(c) QLoRA merged, then INT{bits}"
        names[f"d{bits}"] = f"(d) QA-LoRA merged, INT{bits}"
        names[f"e{bits}"] = f"(e) base, INT{bits}, no training"
    order = ["a", "b", *[f"{k}{b}" for b in s["bits"] for k in ("c", "d", "e")]]
    lines = [
        "| model | held-out perplexity | trainable params | train s/step | size on disk | tokens/s (greedy) |",
        "|---|---|---|---|---|---|",
    ]
    for key in order:
        r = rows[key]
        speed = fmt_rate(r.get("tok_s"))
        if r.get("tok_s_codes"):
            speed = f"{speed} dequantized at load; {fmt_rate(r['tok_s_codes'])} held as codes"
        trainable = f"{r['trainable']:,}" if "trainable" in r else "-"
        train_s = f"{r['train_s']:.2f}" if "train_s" in r else "-"
        lines.append(
            f"| {names[key]} | {r['ppl']:.2f} | {trainable} | {train_s} | {r['size_mb']:.1f} MiB | {speed} |"
        )
    verdicts = []
    for bits in s["bits"]:
        c, d, b = rows[f"c{bits}"]["ppl"], rows[f"d{bits}"]["ppl"], rows["b"]["ppl"]
        verdicts.append(
            f"- INT{bits}: QA-LoRA {d:.2f} against QLoRA-then-quantize {c:.2f} "
            f"({'better' if d < c else 'worse'}, {d / c:.3g}x); {d / b:.3g}x the 16-bit QLoRA model's {b:.2f}."
        )
    return "\n".join(
        [
            "# QA-LoRA against QLoRA: perplexity after merging to low bits",
            "",
            f"`bench/qalora.py` (see its docstring for the method). Settings: {s['base']} "
            f"({'the embedded SmolLM2-135M-Instruct' if s['base'] == 'smollm2' else 'a local model'}), "
            f"{s['steps']} steps of batch {s['batch_size']} x {s['seq_len']} tokens on the project's OASST1 sample, "
            f"LoRA r=8 alpha 16, learning rate {s['lr']}, group size {s['group_size']}, "
            f"float32 compute on the CPU ({s['threads']} thread). Perplexity over every token of {HELD_OUT.relative_to(ROOT)} "
            f"(10 conversations written for this, Guanaco `### Human:` format). Tokens/s: greedy, "
            f"{s['new_tokens']} new tokens, batch 1, median of {s['repeats']} after a warm-up (± half the range). "
            "Training time: mean seconds per optimizer step after a warm-up step. Sizes: the weight files, "
            "with everything not quantized (embeddings, norms) in float16; low-bit layers cost bits + 48/group "
            "bits per weight (a float16 scale and a float32 zero point per group).",
            "",
            "Figures from a shared 2-core machine (other jobs running): the times are indicative, the "
            "perplexities are not affected.",
            "",
            *lines,
            "",
            "## Does the paper's shape show?",
            "",
            "The paper expects (d) close to (b) and better than (c), most at 3 and 2 bits.",
            "",
            *verdicts,
            "",
            "What to read into it: one short run (20 steps) on a 135M model, 15 training conversations, one "
            "seed, one learning rate for both methods. The sum pooling feeds A inputs larger than LoRA's "
            "(about sqrt(group) times for inputs of mixed sign), so at the same learning rate QA-LoRA's adapter moves faster, which a run this "
            "short favours; no per-method learning-rate sweep was done. At INT2 the group-wise round-to-nearest "
            "start is ruined (e) and 20 steps recover only part of it: (d) beats (c) by far but stays far from (b).",
            "",
            "Training time: how much of QA-LoRA's faster steps comes from its smaller adapter and how much "
            "from bitsandbytes' CPU 4-bit path on the QLoRA side was not separated; on a GPU the paper reports "
            "40 h against 21.5 h for LLaMA-7B, which this machine cannot check. Generation: (a), (b) and (d) dequantized at load run the same float arithmetic, so "
            "their differences are the shared machine's load, not the model. Held as codes, (d) rebuilds every "
            "weight at each forward (there is no INT3/INT2 matmul kernel on the CPU), so it is slower; the "
            "paper's speed-up comes from GPU INT kernels, which this project does not have. (c) and (d) share one "
            "format and loader, so one speed stands for both.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="smollm2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--bits", type=lambda t: [int(b) for b in t.split(",")], default=[4, 3, 2])
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1 is fastest on a shared machine)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    REPORT.write_text(report(result))
    print(f"wrote {REPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
