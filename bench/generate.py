"""Tokens/s of batched, left-padded generation against one prompt at a time, same model (SmolLM2),
same prompts, same sampling, in one run; writes docs/bench/generate.md.

    .venv/bin/python bench/generate.py [--prompts 8] [--batch-size 8] [--max-new-tokens 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from arena.backends import GenerateParams, Request
from arena.backends.transformers_backend import TransformersBackend
from arena.benchmarks import load_sample_prompts
from arena.models import ModelSpec, ensure_smollm2

PROJECT = Path(__file__).resolve().parents[1]


def tokens_per_second(
    backend: TransformersBackend, requests: list[Request], batch_size: int
) -> tuple[float, int]:
    """Completion tokens per wall-clock second over all requests, `batch_size` at a time."""
    start, tokens = time.perf_counter(), 0
    for i in range(0, len(requests), batch_size):
        tokens += sum(r.completion_tokens for r in backend.generate(requests[i : i + batch_size]))
    return tokens / (time.perf_counter() - start), tokens


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1 is fastest on a shared machine)"
    )
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "bench" / "generate.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = GenerateParams(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    backend = TransformersBackend(ModelSpec("smollm2", str(ensure_smollm2())), params)
    requests = [Request([{"role": "user", "content": row["turns"][0]}]) for row in load_sample_prompts()]
    requests = requests[: args.prompts]
    load = os.getloadavg()[0]
    tokens_per_second(backend, requests[:1], 1)  # warm-up
    single, single_tokens = tokens_per_second(backend, requests, 1)
    batched, batched_tokens = tokens_per_second(backend, requests, args.batch_size)
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU, {torch.get_num_threads()} threads"
    )
    section = f"""## Batched generation (`bench/generate.py`)

SmolLM2-135M-Instruct (float32), {len(requests)} prompts of the sample set, nucleus sampling
(p = 0.9, T = 0.7, seed 0), at most {args.max_new_tokens} new tokens, transformers backend, on
{platform.machine()} {device}, load average {load:.1f} at the start (other jobs share the cores, so
absolute figures are low; the ratio is what to read):

| mode | completion tokens | tokens/s |
|---|---:|---:|
| one prompt at a time (baseline) | {single_tokens} | {single:.1f} |
| left-padded batches of {args.batch_size} | {batched_tokens} | {batched:.1f} |

Batched generation runs at **{batched / single:.1f}x** the tokens/s of one prompt at a time.
Rerun: `.venv/bin/python bench/generate.py --prompts {args.prompts} --batch-size {args.batch_size} \\
--max-new-tokens {args.max_new_tokens} --threads {args.threads}`. vLLM against transformers needs a GPU and the `vllm` extra;
none was lent for this run.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(section)
    print(section)


if __name__ == "__main__":
    main()
