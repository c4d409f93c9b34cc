"""Judge throughput: with a server answering in a fixed latency, judgments/s should approach
concurrency / latency. Runs the real path (openai client over HTTP, parsing, one SQLite transaction
per judgment) against the tests' scripted server in its own process, and writes docs/bench/judge.md's first section.

    .venv/bin/python bench/judge.py [--latency 0.2] [--concurrency 1 4 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena.openai_client import ChatClient, ClientConfig  # noqa: E402
from arena.store import Store  # noqa: E402
from arena.tournament import Limits, judge_matches, load_entries, once, plan_matches, select_pairs  # noqa: E402
from bench.judge_doc import write_section  # noqa: E402
from judges.judge import Judge, JudgeConfig  # noqa: E402
from judges.templates import load_template  # noqa: E402
from tests.judge_helpers import MODELS, fill_store  # noqa: E402


@contextmanager
def server_process(latency: float) -> Iterator[str]:
    """The scripted server in its own process (so it does not compete for this one's GIL)."""
    cmd = [sys.executable, "-m", "tests.scripted_server", "--latency", str(latency),
           "--reply", "tests.judge_helpers:threeclass_judge"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def measure(base_url: str, concurrency: int, judgments: int, workdir: Path) -> tuple[float, float]:
    """Judgments per second for `judgments` fresh matches at this concurrency, and this process's
    CPU milliseconds per judgment (client, parsing, store)."""
    store = Store(f"sqlite:///{workdir / f'c{concurrency}.db'}")
    fill_store(store, prompts=-(-judgments // 6))  # 3 models: 6 ordered matches per prompt
    entries = load_entries(store, "vicuna", MODELS)
    matches = plan_matches(entries, select_pairs(MODELS, "all"))[:judgments]
    client_cfg = ClientConfig(model="judge", base_url=base_url, concurrency=concurrency)
    cfg = JudgeConfig(client=client_cfg, template=load_template("qlora-vicuna"), name="bench")

    async def run() -> tuple[float, float]:
        async with ChatClient(client_cfg) as client:
            start, cpu = time.perf_counter(), time.process_time()
            tally = await judge_matches(
                store, Judge(cfg, client), once(matches), limits=Limits(), concurrency=concurrency
            )
            assert tally.ok == len(matches), tally
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            return len(matches) / wall, 1000 * cpu / len(matches)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="server seconds per reply")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--rounds", type=int, default=4, help="judgments per run = rounds x concurrency")
    args = parser.parse_args()
    rows = []
    with server_process(args.latency) as base_url, tempfile.TemporaryDirectory() as tmp:
        for c in args.concurrency:
            rate, cpu_ms = measure(base_url, c, max(8, args.rounds * c), Path(tmp))
            ideal = c / args.latency
            rows.append((c, rate, ideal, rate / ideal, cpu_ms))
            print(
                f"concurrency {c:3d}: {rate:7.1f} judgments/s, ideal {ideal:6.1f}, ratio {rate / ideal:.2f}"
            )
    base = rows[0][1]
    table = [
        "| concurrency | judgments/s | ideal (c / latency) | ratio to ideal | speed-up vs concurrency 1 "
        "| client CPU ms per judgment |",
        "|---:|---:|---:|---:|---:|---:|",
        *(f"| {c} | {r:.1f} | {i:.1f} | {q:.2f} | {r / base:.1f}x | {ms:.0f} |" for c, r, i, q, ms in rows),
    ]
    body = (
        f"`bench/judge.py`: the scripted server answers every call after {args.latency:g} s; each run judges "
        f"{args.rounds} x concurrency fresh matches through the real client, parser and store (one SQLite "
        "transaction per judgment, written by one background thread). The ideal is concurrency / latency. "
        "At low concurrency throughput follows the ideal; at high concurrency the client's CPU per "
        "judgment (the openai package builds and validates each request and reply) times the rate "
        f"meets the CPU this machine can give: {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end of the run, shared with the server's process. Real judges "
        "answer in seconds, not 0.2 s (GPT-4 writing a 300-token review: ~10 s), so at `--concurrency 32` "
        "the ideal is ~3 judgments/s, far below that ceiling.\n\n" + "\n".join(table)
    )
    write_section(ROOT / "docs" / "bench" / "judge.md", "Judge throughput", body)


if __name__ == "__main__":
    main()
