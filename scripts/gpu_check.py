"""The GPU path in one prepared run: what the README promises for a real run, checked on CUDA.

Everything the test suite skips on a CPU machine happens here, on a small model built from the
embedded SmolLM2's config with fewer layers (random weights, so no weights travel) and on the
project's CPU smoke data:

- train: bf16 4-bit QLoRA (NF4 + double quantization on the GPU, paged AdamW 32-bit, really paged),
  loss falling over 30 steps, a stop-and-resume run bit-identical to a straight one, and a merge;
- generate: the transformers backend on CUDA in bf16 and in 4-bit, batched against one at a time;
- vllm: where vllm is importable, the vllm backend with and without the trained adapter against
  transformers' greedy answers;
- multi-gpu: where two GPUs are present, `accelerate launch` with the DDP and FSDP-QLoRA configs.

Each check is isolated (one failing does not hide the others) and lands in OUTDIR as
`gpu-check.json` and `gpu-check.md`. `scripts/gpu-check.sh` is the entry point; it installs the
carried wheels first (see docs/gpu.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
STEPS = 30
HALF = STEPS // 2
PROMPTS = 32
NEW_TOKENS = 64

PLAN = f"""gpu-check plans, on a model built from the embedded SmolLM2 config with fewer layers (random weights):
  train      bf16 4-bit QLoRA on CUDA: NF4 + double-quant Linear4bit layers on the GPU, paged AdamW 32-bit
             (state tensors checked to be paged), {STEPS} steps with the loss falling, a run stopped at step
             {HALF} and resumed compared bit for bit with a straight run, merge onto the dequantized base;
             tokens/s and peak GPU memory
  generate   transformers backend on CUDA, bf16 and 4-bit NF4, {PROMPTS} prompts x {NEW_TOKENS} tokens greedy,
             one batch against one prompt at a time (both warmed up); tokens/s
  vllm       where vllm is importable: vllm backend with and without the trained adapter, greedy answers
             compared with transformers', tokens/s of both; otherwise skipped and said so
  multi-gpu  where 2+ GPUs are present: accelerate launch with trainer/accelerate/ddp.yaml and
             fsdp_qlora.yaml for a few steps each; otherwise skipped and said so
  summary    OUTDIR/gpu-check.json and OUTDIR/gpu-check.md"""


@dataclass
class Context:
    """What the checks share: the scratch folder, the small model, the prompts, and what earlier
    checks left for later ones (the trained adapter, transformers' answers)."""

    work: Path
    model_dir: Path
    prompts: list[str]
    shared: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ the small model


def build_small_model(source: Path, out: Path, layers: int) -> Path:
    """SmolLM2's architecture and tokenizer with `layers` decoder layers and random weights, saved
    as an ordinary checkpoint so every loader (trainer, backends, vLLM) reads it as a real model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(source)
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def model_source(kit: Path) -> Path:
    """The carried config and tokenizer (scripts/gpu-wheels.sh), else the locally converted SmolLM2."""
    carried = kit / "smollm2"
    if (carried / "config.json").is_file():
        return carried
    from trainer.model import resolve_base

    return Path(resolve_base("smollm2"))


def sample_prompts() -> list[str]:
    """The project's sample prompts, repeated with a marker until there are PROMPTS of them."""
    lines = (PROJECT / "data/samples/prompts.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    return [texts[i % len(texts)] + (f" (variant {i // len(texts)})" if i >= len(texts) else "")
            for i in range(PROMPTS)]  # fmt: skip


# ------------------------------------------------------------------ train


def train_config(ctx: Context, out: Path, max_steps: int) -> Any:
    from trainer.config import TrainConfig

    return TrainConfig(
        base=str(ctx.model_dir), data="sample", compute_dtype="bfloat16", optim="paged_adamw_32bit",
        max_seq_len=256, lora_r=128, lora_alpha=256.0, lora_dropout=0.05, learning_rate=1e-3,
        batch_size=4, grad_accum=2, max_steps=max_steps, eval_steps=10, save_steps=HALF,
        save_total_limit=3, logging_steps=5, gradient_checkpointing=True, seed=0, out=str(out),
    )  # fmt: skip


def four_bit_layers(model: Any) -> dict[str, Any]:
    """How many Linear4bit layers the model holds, and whether all are NF4, nested and on CUDA."""
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    states = [m.weight.quant_state for m in layers]
    return {
        "linear4bit_layers": len(layers),
        "all_nf4": all(s.quant_type == "nf4" for s in states),
        "all_double_quant": all(bool(s.nested) for s in states),
        "all_on_cuda": all(m.weight.device.type == "cuda" for m in layers),
    }


def paged_state(optimizer: Any) -> dict[str, Any]:
    """bitsandbytes pages only the state buffers of 1e5 elements or more (smaller ones are plain
    tensors) and marks the paged ones with `is_paged`; the LoRA rank is chosen so some qualify."""
    import torch

    inner = getattr(optimizer, "optimizer", optimizer)
    tensors = [t for state in inner.state.values() for t in state.values()
               if isinstance(t, torch.Tensor) and t.numel() > 1]  # fmt: skip
    paged = [t for t in tensors if getattr(t, "is_paged", False)]
    large = [t for t in tensors if t.numel() >= 1e5]
    return {"optimizer": type(inner).__name__, "state_tensors": len(tensors),
            "state_tensors_over_1e5": len(large), "paged_tensors": len(paged)}  # fmt: skip


def adapter_tensors(run: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter_model.safetensors"))


def check_train(ctx: Context) -> dict[str, Any]:
    import torch

    from trainer.merge import dequantized_base, merge
    from trainer.train import Loop

    torch.cuda.reset_peak_memory_stats()
    straight = ctx.work / "train-straight"
    loop = Loop(train_config(ctx, straight, STEPS))
    layers = four_bit_layers(loop.model)
    metrics = loop.run()
    peak_gib = torch.cuda.max_memory_allocated() / 2**30
    paged = paged_state(loop.optimizer)
    losses = [row["loss"] for row in metrics["history"]]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    del loop
    torch.cuda.empty_cache()

    resumed = ctx.work / "train-resumed"
    Loop(train_config(ctx, resumed, HALF)).run()
    Loop(train_config(ctx, resumed, STEPS), resume=True).run()
    a, b = adapter_tensors(straight), adapter_tensors(resumed)
    max_diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    identical = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    merged_dir = merge(straight, ctx.work / "merged")
    merge_error = merged_logit_error(straight, merged_dir, ctx.prompts[0], dequantized_base)
    ctx.shared["adapter"] = straight
    ok = (layers["linear4bit_layers"] > 0 and layers["all_nf4"] and layers["all_double_quant"]
          and layers["all_on_cuda"] and paged["paged_tensors"] == paged["state_tensors_over_1e5"] > 0
          and last < first and identical and merge_error < 0.05)  # fmt: skip
    return {
        "status": "passed" if ok else "failed",
        **layers, **paged,
        "steps": metrics["step"], "loss_first5": round(first, 4), "loss_last5": round(last, 4),
        "eval_loss": metrics["eval_loss"], "tokens_per_s": round(metrics["tokens_per_s"], 1),
        "peak_gpu_gib": round(peak_gib, 3),
        "resume_identical": identical, "resume_max_abs_diff": max_diff,
        "merge_max_rel_logit_error": round(merge_error, 5),
    }  # fmt: skip


def merged_logit_error(run: Path, merged_dir: Path, text: str, dequantized_base: Callable) -> float:
    """Largest logit difference, relative to the largest logit, between the unmerged adapter on the
    dequantized base and the merged checkpoint as saved (bf16 rounding is the expected error)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = tokenizer(text, return_tensors="pt").input_ids.cuda()
    base, _ = dequantized_base(run)
    with torch.no_grad():
        unmerged = PeftModel.from_pretrained(base, str(run)).eval()(ids).logits.float()
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.bfloat16).cuda().eval()
        again = merged(ids).logits.float()
    return float((unmerged - again).abs().max() / unmerged.abs().max())


# ------------------------------------------------------------------ generate


def timed_answers(backend: Any, prompts: list[str], batched: bool) -> tuple[list[Any], float]:
    """Answers and tokens/s, after a warm-up call of the same shape."""
    from arena.backends import Request

    requests = [Request(messages=[{"role": "user", "content": p}]) for p in prompts]
    backend.generate(requests if batched else requests[:1])
    start = time.perf_counter()
    results = backend.generate(requests) if batched else [backend.generate([r])[0] for r in requests]
    seconds = time.perf_counter() - start
    return results, sum(r.completion_tokens or 0 for r in results) / seconds


def greedy() -> Any:
    from arena.backends import GenerateParams

    return GenerateParams(temperature=0.0, max_new_tokens=NEW_TOKENS, batch_size=PROMPTS, stop=())


def check_generate(ctx: Context) -> dict[str, Any]:
    import torch

    from arena.backends.transformers_backend import TransformersBackend
    from arena.models import ModelSpec

    rows = {}
    for label, quant in (("bf16", None), ("nf4", "nf4")):
        spec = ModelSpec(name=f"small-{label}", base_model=str(ctx.model_dir), quantization=quant)
        backend = TransformersBackend(spec, greedy(), prompt_format="guanaco", device="cuda")
        answers, batched = timed_answers(backend, ctx.prompts, batched=True)
        _, single = timed_answers(backend, ctx.prompts, batched=False)
        if label == "bf16":
            ctx.shared["transformers_answers"] = answers
            ctx.shared["transformers_tokens_per_s"] = batched
        rows[label] = {"batched_tokens_per_s": round(batched, 1), "single_tokens_per_s": round(single, 1),
                       "batched_over_single": round(batched / single, 2), "device": str(backend.model.device)}  # fmt: skip
        backend.close()
    torch.cuda.empty_cache()
    ok = all(r["device"].startswith("cuda") and r["batched_over_single"] > 1 for r in rows.values())
    return {"status": "passed" if ok else "failed", **rows}


# ------------------------------------------------------------------ vllm


def check_vllm(ctx: Context) -> dict[str, Any]:
    if importlib.util.find_spec("vllm") is None:
        return {"status": "skipped", "reason": "vllm is not importable here (not in the GPU image; its wheel "
                "is too large to carry): install the vllm extra on a GPU machine and rerun"}  # fmt: skip
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")  # CUDA is already initialised
    from arena.backends.transformers_backend import TransformersBackend
    from arena.backends.vllm_backend import VLLMBackend
    from arena.models import ModelSpec

    rows = {}
    for label, adapter in (("base", None), ("adapter", ctx.shared.get("adapter"))):
        if label == "adapter" and adapter is None:
            rows[label] = {"status": "skipped", "reason": "the train check produced no adapter"}
            continue
        spec = ModelSpec(name=f"small-{label}", base_model=str(ctx.model_dir),
                         adapter=str(adapter) if adapter else None)  # fmt: skip
        reference = TransformersBackend(spec, greedy(), prompt_format="guanaco", device="cuda")
        hf_answers, hf_speed = timed_answers(reference, ctx.prompts, batched=True)
        reference.close()
        engine = VLLMBackend(spec, greedy(), prompt_format="guanaco", gpu_memory_utilization=0.5)
        vllm_answers, vllm_speed = timed_answers(engine, ctx.prompts, batched=True)
        engine.close()
        same = sum(a.raw == b.raw for a, b in zip(hf_answers, vllm_answers, strict=True))
        rows[label] = {"identical_greedy_answers": f"{same}/{len(hf_answers)}",
                       "transformers_tokens_per_s": round(hf_speed, 1), "vllm_tokens_per_s": round(vllm_speed, 1)}  # fmt: skip
    return {"status": "passed", **rows}


# ------------------------------------------------------------------ multi-gpu


def check_multi_gpu(ctx: Context) -> dict[str, Any]:
    import torch

    count = torch.cuda.device_count()
    if count < 2:
        return {"status": "skipped", "reason": f"{count} GPU present: DDP and FSDP-QLoRA need 2 or more"}
    rows, ok = {}, True
    for name in ("ddp", "fsdp_qlora"):
        out = ctx.work / f"accelerate-{name}"
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                   str(PROJECT / f"trainer/accelerate/{name}.yaml"), "--num_processes", "2", "-m", "trainer",
                   "--base", str(ctx.model_dir), "--data", "sample", "--max-steps", "4", "--eval-steps", "4",
                   "--save-steps", "4", "--batch-size", "2", "--grad-accum", "1", "--max-seq-len", "256",
                   "--compute-dtype", "bfloat16", "--out", str(out)]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=240)
        passed = done.returncode == 0 and (out / "adapter_model.safetensors").is_file()
        ok &= passed
        rows[name] = {"passed": passed, "seconds": round(time.perf_counter() - start, 1),
                      "tail": done.stderr[-600:] if not passed else ""}  # fmt: skip
    return {"status": "passed" if ok else "failed", **rows}


CHECKS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "train": check_train,
    "generate": check_generate,
    "vllm": check_vllm,
    "multi-gpu": check_multi_gpu,
}


# ------------------------------------------------------------------ summary


def environment() -> dict[str, Any]:
    import torch

    versions = {}
    for name in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "vllm"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {"date": dt.date.today().isoformat(), "gpu": torch.cuda.get_device_name(0),
            "gpus": torch.cuda.device_count(), "cuda": torch.version.cuda, "versions": versions}  # fmt: skip


def markdown(summary: dict[str, Any]) -> str:
    env = summary["environment"]
    lines = [f"# gpu-check, {env['date']}, {env['gpu']} (x{env['gpus']}), CUDA {env['cuda']}", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()), ""]  # fmt: skip
    for name, result in summary["checks"].items():
        lines += [f"## {name}: {result['status']}", "", "| what | value |", "| --- | --- |"]
        lines += [f"| {key} | {json.dumps(value) if isinstance(value, dict) else value} |"
                  for key, value in result.items() if key != "status"]  # fmt: skip
        lines.append("")
    lines.append(f"Wall time: {summary['seconds']:.0f} s")
    return "\n".join(lines) + "\n"


def run_checks(ctx: Context, names: list[str]) -> dict[str, dict[str, Any]]:
    results = {}
    for name in names:
        print(f"gpu-check: {name} ...", flush=True)
        start = time.perf_counter()
        try:
            results[name] = CHECKS[name](ctx)
        except Exception as err:  # one broken path must not hide the others' results
            results[name] = {"status": "failed", "error": f"{type(err).__name__}: {err}"[:800],
                             "traceback": traceback.format_exc()[-1500:]}  # fmt: skip
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"gpu-check: {name} {results[name]['status']} ({results[name]['seconds']} s)", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gpu-check.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, nargs="?", help="where gpu-check.json and gpu-check.md go")
    parser.add_argument("--plan", action="store_true", help="print what would run, and stop")
    parser.add_argument("--only", default=",".join(CHECKS), help="comma-separated subset of checks")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of the small model")
    parser.add_argument("--kit", type=Path, default=PROJECT / ".gpu-kit", help="carried wheels and tokenizer")
    args = parser.parse_args(argv)
    if args.plan:
        print(PLAN)
        return 0
    if args.outdir is None:
        parser.error("OUTDIR is required (or --plan)")
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False). Run it on a GPU "
              "machine (docs/gpu.md); `scripts/gpu-check.sh --plan` shows what it would run.", file=sys.stderr)  # fmt: skip
        return 3
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS for the resume check
    torch.use_deterministic_algorithms(True, warn_only=True)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        parser.error(f"unknown check(s) {', '.join(unknown)}: choose from {', '.join(CHECKS)}")
    args.outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        model_dir = build_small_model(model_source(args.kit), work / "small-model", args.layers)
        ctx = Context(work=work, model_dir=model_dir, prompts=sample_prompts())
        summary = {"environment": environment(), "checks": run_checks(ctx, names)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary["seconds"] = time.perf_counter() - start
    (args.outdir / "gpu-check.json").write_text(json.dumps(summary, indent=2, default=str))
    (args.outdir / "gpu-check.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0 if all(r["status"] != "failed" for r in summary["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
