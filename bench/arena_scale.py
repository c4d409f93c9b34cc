"""Cost of a public-arena-sized store: 2,000,000 judgments among 100 models, rated with `bt --bootstrap 100`.

Generates a synthetic store (not committed): 100 models with Bradley-Terry strengths, 1,000 prompts,
one answer per model and prompt, and judgments of random ordered pairs on random prompts (15% ties,
1% unparsed), written in bulk (COPY on PostgreSQL). The store grows in steps (0.2 M, 0.5 M, 1 M,
2 M judgments); at each step a fresh process runs the real command line,
`guanaco leaderboard --method bt --bootstrap 100`, and reports its wall time and peak RSS (Linux
VmHWM). On SQLite (a temporary file) and on PostgreSQL when --postgres is given (the tables are
dropped first: give a database of your own). Writes docs/bench/arena-scale.md.

    PYTHONPATH=. python bench/arena_scale.py [--sizes 200000,500000,1000000,2000000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine_note, peak_rss_mib

from arena.query.writes import ids_by_key, insert_ignore
from arena.store import Base, Contestant, Generation, Prompt, Store

PROJECT = Path(__file__).resolve().parents[1]
COMMAND = "PYTHONPATH=. python bench/arena_scale.py --postgres postgresql+psycopg://USER:PASSWORD@HOST/DB"
MODELS, PROMPTS, BENCHMARK, JUDGE, TEMPLATE = 100, 1000, "synthetic", "openai:synthetic-judge", "synthetic"
CLI = ["leaderboard", "--benchmark", BENCHMARK, "--judge", JUDGE, "--method", "bt", "--bootstrap", "100"]


def seed_store(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """Prompts, models and one answer per model and prompt; returns the generation ids as a
    (prompts, models) array and the models' true natural-log strengths."""
    with store.session() as session:
        insert_ignore(session, Prompt, [{"benchmark": BENCHMARK, "key": f"s{p:04d}", "category": "generic",
                                         "turns": [f"Synthetic question {p}?"]} for p in range(PROMPTS)])  # fmt: skip
        insert_ignore(session, Contestant, [{"name": f"model-{m:03d}"} for m in range(MODELS)])
        pids = {key: i for (bench, key), i in ids_by_key(session, Prompt).items() if bench == BENCHMARK}
        cids = ids_by_key(session, Contestant)
        prompt_ids = [pids[f"s{p:04d}"] for p in range(PROMPTS)]
        model_ids = [cids[f"model-{m:03d}"] for m in range(MODELS)]
        insert_ignore(session, Generation, [{"prompt_id": p, "contestant_id": c, "text": "answer"}
                                            for p in prompt_ids for c in model_ids])  # fmt: skip
        gids = ids_by_key(session, Generation)
    generations = np.array([[gids[(p, c)] for c in model_ids] for p in prompt_ids])
    return np.array(prompt_ids), generations


def add_judgments(store: Store, prompt_ids: np.ndarray, generations: np.ndarray, picks: np.ndarray,
                  strength: np.ndarray, rng: np.random.Generator) -> None:  # fmt: skip
    """Insert the judgments numbered `picks` (an index into every prompt x ordered pair)."""
    pairs = MODELS * (MODELS - 1)
    prompt, pair = np.divmod(picks, pairs)
    first, second = np.divmod(pair, MODELS - 1)
    second = second + (second >= first)  # skip the model itself
    p_first = 1 / (1 + np.exp(strength[second] - strength[first]))
    draw = rng.random(len(picks))
    verdict = np.where(draw < 0.15, "tie", np.where(rng.random(len(picks)) < p_first, "1", "2"))
    unparsed = rng.random(len(picks)) < 0.01
    created = dt.datetime(2026, 1, 1)
    rows = [
        (JUDGE, TEMPLATE, "s" * 64, int(prompt_ids[p]), int(generations[p, a]), int(generations[p, b]),
         None if bad else str(v), "unparsed" if bad else "ok", f"[[{v}]]", "{}", created)
        for p, a, b, v, bad in zip(prompt.tolist(), first.tolist(), second.tolist(), verdict.tolist(),
                                   unparsed.tolist(), strict=True)
    ]  # fmt: skip
    bulk_insert(store, rows)


COLUMNS = ("judge", "template_id", "template_hash", "prompt_id", "generation1_id", "generation2_id", "verdict",
           "status", "raw", "meta", "created_at")  # fmt: skip


def bulk_insert(store: Store, rows: list[tuple]) -> None:
    """The bench's own fast write (not what is measured): COPY on PostgreSQL, executemany on SQLite."""
    connection = store.engine.raw_connection()
    try:
        cursor = connection.cursor()
        if store.engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY judgments ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(COLUMNS))
            cursor.executemany(f"INSERT INTO judgments ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
        connection.commit()
    finally:
        connection.close()


def measure(url: str) -> dict[str, float]:
    """Wall seconds and peak RSS of a fresh process running the leaderboard command line."""
    code = (
        "import sys, json, time; sys.path.insert(0, 'bench'); from common import peak_rss_mib; "
        "start = time.perf_counter(); from arena.cli import main; rc = main(sys.argv[1:]); "
        "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - start, 'peak_mib': peak_rss_mib()}), "
        "file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code, *CLI, "--db", url], cwd=PROJECT, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(done.stderr.strip().splitlines()[-1])
    result["cpu"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result["leaderboard"] = done.stdout
    return result


class Arena:
    """One growing synthetic store on one database."""

    def __init__(self, url: str, sizes: list[int], seed: int) -> None:
        self.url, self.store = url, Store(url)
        Base.metadata.drop_all(self.store.engine)
        Base.metadata.create_all(self.store.engine)
        self.rng = np.random.default_rng(seed)
        self.strength = self.rng.normal(0.0, 1.0, MODELS)
        self.prompt_ids, self.generations = seed_store(self.store)
        self.picks = self.rng.choice(PROMPTS * MODELS * (MODELS - 1), size=max(sizes), replace=False)
        self.have = 0

    def grow_and_measure(self, size: int) -> dict[str, float]:
        """Add judgments up to `size`, then measure the command line on the store."""
        start = time.perf_counter()
        add_judgments(self.store, self.prompt_ids, self.generations, self.picks[self.have : size], self.strength,
                      self.rng)  # fmt: skip
        self.have, inserted = size, time.perf_counter() - start
        result = measure(self.url) | {"judgments": size, "insert_seconds": inserted}
        print(f"{self.store.engine.dialect.name} {size:,}: {result['seconds']:.1f} s, {result['cpu']:.1f} CPU s, "
              f"{result['peak_mib']:.0f} MiB", flush=True)  # fmt: skip
        return result


def report(results: dict[str, list[dict[str, float]]], load_start: float, sizes: list[int]) -> str:
    lines = [
        "## Arena scale: 2 M judgments among 100 models (`bench/arena_scale.py`)",
        "",
        f"A synthetic store: {MODELS} models with Bradley-Terry strengths, {PROMPTS:,} prompts, one answer per "
        "model and prompt, judgments of random ordered pairs on random prompts (15% ties, 1% unparsed), grown in "
        "steps. At each step a fresh process runs the command line "
        f"`guanaco leaderboard {' '.join(CLI[1:])}`: it loads the judgments from the store, fits "
        "Bradley-Terry and 100 bootstrap rounds, and prints the leaderboard. Time is the process's wall clock "
        "from before importing the project to the printed leaderboard (CPU seconds are the same process's, which "
        "the other work on the machine inflates less; the PostgreSQL server's own work is not in them); memory is "
        "its peak RSS. The store is read by `arena.query.judgments.judgments_frame`: the judgments' own columns only, "
        "streamed in chunks and handed to pandas column by column, with prompts and models named afterwards "
        "from their own small tables (no join per judgment).",
        "",
        "| store | judgments | wall seconds | CPU seconds (the command's process) | peak RSS (MiB) "
        "| wall seconds per million | bench's own bulk write (s, not part of the command) |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, rows in results.items():
        for row in rows:
            lines.append(f"| {backend} | {row['judgments']:,} | {row['seconds']:.1f} | {row['cpu']:.1f} | {row['peak_mib']:.0f} | "
                         f"{row['seconds'] / row['judgments'] * 1e6:.1f} | {row['insert_seconds']:.0f} |")  # fmt: skip
    lines.append("")
    missing = [f"{name} at {size:,}" for name, rows in results.items() for size in sizes[len(rows) :]]
    if missing:
        lines += [f"Not measured (the run was stopped before): {', '.join(missing)}.", ""]
    for backend, rows in results.items():
        if len(rows) < 2:
            continue
        small, large = rows[0], rows[-1]
        growth = large["judgments"] / small["judgments"]
        lines.append(
            f"- {backend}: {growth:.0f}x the judgments took {large['seconds'] / small['seconds']:.1f}x the wall time "
            f"({large['cpu'] / small['cpu']:.1f}x the CPU time) "
            f"and {large['peak_mib'] / small['peak_mib']:.1f}x the peak memory; the largest store: "
            f"{large['seconds']:.0f} s and {large['peak_mib'] / 1024:.2f} GiB (target: under 120 s and 4 GiB)."
        )
    lines += ["", machine_note(load_start), "", "The leaderboard printed for the largest store "
              f"({next(iter(results))}, first rows):", "", "```"]  # fmt: skip
    board = next(iter(results.values()))[-1]["leaderboard"].splitlines()
    lines += [*board[:24], "```", "", f"Reproduce: `{COMMAND}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="200000,500000,1000000,2000000")
    parser.add_argument(
        "--postgres", help="PostgreSQL URL of a database of your own (its tables are dropped)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "bench" / "arena-scale.md")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"SQLite": f"sqlite:///{tmp}/arena.db"} | (
            {"PostgreSQL": args.postgres} if args.postgres else {}
        )
        arenas = {name: Arena(url, sizes, args.seed) for name, url in urls.items()}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in arenas}
        for size in sizes:  # both stores grow together; the page is rewritten after every measurement
            for name, arena in arenas.items():
                results[name].append(arena.grow_and_measure(size))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(report(results, load_start, sizes), encoding="utf-8")
    print(f"wrote {args.out} (this process peaked at {peak_rss_mib():.0f} MiB)")


if __name__ == "__main__":
    main()
