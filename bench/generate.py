"""Tokens/s of batched, left-padded generation against one prompt at a time: same model (SmolLM2-135M),
same 32 Vicuna prompts, greedy decoding so both sides do the same work, in one run; writes
docs/bench/generate.md.

Both modes are warmed up first; then three repeats, the two modes interleaved so that load on the
machine hits both alike. Tokens are the answers' real tokens (through the end token), not the padding
a finished row keeps generating inside a batch.

    PYTHONPATH=. python bench/generate.py [--prompts 32] [--batch-size 32] [--max-new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from common import machine_note, spread, timed, write_page

from arena.backends import GenerateParams, Request
from arena.backends.transformers_backend import TransformersBackend
from arena.benchmarks import load_benchmark
from arena.models import ModelSpec
from foundations.smollm2 import ensure_smollm2

PROJECT = Path(__file__).resolve().parents[1]
QUESTIONS = PROJECT.parent / "shared" / "data" / "qlora-eval" / "prompts" / "vicuna_questions.jsonl"


def tokens_per_second(
    backend: TransformersBackend, requests: list[Request], batch_size: int
) -> tuple[float, int]:
    """Real completion tokens per wall-clock second over all requests, `batch_size` at a time."""

    def run() -> int:
        return sum(r.completion_tokens for i in range(0, len(requests), batch_size)
                   for r in backend.generate(requests[i : i + batch_size]))  # fmt: skip

    tokens, took = timed(run)
    return tokens / took.wall, tokens


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch, the same for both modes"
    )
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "bench" / "generate.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    params = GenerateParams(temperature=0.0, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    backend = TransformersBackend(ModelSpec("smollm2", str(ensure_smollm2())), params)
    rows = load_benchmark("vicuna", QUESTIONS)[: args.prompts]
    requests = [Request([{"role": "user", "content": row["turns"][0]}]) for row in rows]
    modes = {
        "one prompt at a time (baseline)": 1,
        f"left-padded batches of {args.batch_size}": args.batch_size,
    }
    for size in modes.values():  # warm-up, both modes
        tokens_per_second(backend, requests[: min(size, 4) or 1], size)
    rates: dict[str, list[float]] = {name: [] for name in modes}
    tokens: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, size in modes.items():
            rate, tokens[name] = tokens_per_second(backend, requests, size)
            rates[name].append(rate)
            print(f"{name}: {rate:.1f} tokens/s ({tokens[name]} tokens)", flush=True)
    single, batched = (statistics.median(r) for r in rates.values())
    lines = [
        "## Batched generation (`bench/generate.py`)",
        "",
        f"SmolLM2-135M-Instruct (float32) on the CPU ({args.threads} torch thread), the first {len(requests)} "
        f"Vicuna questions, greedy decoding, at most {args.max_new_tokens} new tokens, transformers backend. "
        f"Both modes warmed up, then {args.repeats} repeats interleaved; tokens/s counts the answers' real tokens "
        "(median, range in brackets).",
        "",
        "| backend | mode | answer tokens per pass | tokens/s |",
        "|---|---|---:|---:|",
        *[f"| transformers | {name} | {tokens[name]:,} | {spread(rates[name], 1)} |" for name in modes],
        "| vLLM | continuous batching | - | not measured: needs a GPU, none was lent for this run |",
        "",
        f"Batched generation runs at **{batched / single:.1f}x** the tokens/s of one prompt at a time (medians; "
        f"the slowest batched pass against the fastest single pass: {min(rates[list(modes)[1]]) / max(rates[list(modes)[0]]):.1f}x).",
        "",
        machine_note(load_start),
        "",
        f"Reproduce: `PYTHONPATH=. python bench/generate.py --prompts {args.prompts} --batch-size {args.batch_size} "
        f"--max-new-tokens {args.max_new_tokens} --repeats {args.repeats}`",
        "",
    ]
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
