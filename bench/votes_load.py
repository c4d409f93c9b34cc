"""Votes under load: 50 people voting at once through the app's HTTP API (Gradio's queue, raw
HTTP, one cookie jar per voter) against PostgreSQL; every vote must be stored exactly once, and
the p95 vote latency is reported (target: under 300 ms on the project's 2-core machine).

The app runs in a process of its own, as in production; the voters are threads of this one. The
baseline is one voter alone on the same app and store (the latency without contention). Voters
read each battle for a few seconds before voting, as people do; the same voters with no pause
measure the saturation point, and the reading load runs on SQLite too. All voters share 127.0.0.1, so the app's per-IP rate limits
are scaled up 100x for the run (they would otherwise, correctly, stop one address casting 500
votes a minute). Writes docs/bench/votes_load.md.

    GUANACO_TEST_POSTGRES_URL=postgresql+psycopg://... .venv/bin/python bench/votes_load.py \
        [--voters 50] [--votes 10] [--think 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from arena.store import Store  # noqa: E402
from tests.app_load import LoadResult, serve_in_subprocess, stored_votes, vote_load  # noqa: E402
from tests.arena_seed import seed_arena  # noqa: E402
from tests.databases import postgres_schema  # noqa: E402

MODELS = ("m1", "m2", "m3", "m4", "m5", "m6")
PROMPTS = 20
LIMIT_SCALE = 100
OUT = ROOT / "docs" / "bench" / "votes_load.md"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def database(kind: str, postgres_url: str | None) -> Iterator[str]:
    if kind == "postgresql":
        with postgres_schema(postgres_url) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'arena.db'}"


def one_round(
    kind: str, postgres_url: str | None, args: argparse.Namespace, saturate: bool
) -> dict[str, object]:
    """A fresh store and app: a warm-up, one voter alone (the baseline), `voters` people reading
    each battle for `think` seconds before voting, and, when `saturate`, `voters` with no pause."""
    with database(kind, postgres_url) as url:
        store = Store(url)
        seed_arena(store, models=MODELS, prompts=PROMPTS, payload=False)
        port = free_port()
        server = serve_in_subprocess(url, port, LIMIT_SCALE)
        try:
            app = f"http://127.0.0.1:{port}/"
            shapes = {"warm-up": (2, 3, 0.0), "alone": (1, args.votes, 0.0),
                      "reading": (args.voters, args.votes, args.think)}  # fmt: skip
            if saturate:
                shapes["no pause"] = (args.voters, args.votes, 0.0)
            loads, cpu = {}, {}
            for name, (voters, votes, think) in shapes.items():
                before = cpu_seconds(server.pid)
                loads[name] = vote_load(app, voters, votes, think=think)
                cpu[name] = (cpu_seconds(server.pid) - before) / max(1, len(loads[name].latencies))
        finally:
            server.terminate()
            server.wait(timeout=30)
        told = sum((load.recorded for load in loads.values()), Counter())
        stored = stored_votes(store)
        store.engine.dispose()
    failures = [f for load in loads.values() for f in load.failures]
    return {
        "loads": loads,
        "cpu": cpu,
        "told": sum(told.values()),
        "stored": sum(stored.values()),
        "exact": stored == told and not failures,
        "lost": sum((told - stored).values()),
        "extra": sum((stored - told).values()),
        "recounted": sum(load.recounted for load in loads.values()),
        "failures": failures,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def summary(rounds: list[dict[str, object]], key: str) -> dict[str, str]:
    runs: list[LoadResult] = [r["loads"][key] for r in rounds]  # type: ignore[index]
    p95 = [r.percentile(0.95) for r in runs]
    p50 = [r.percentile(0.50) for r in runs]
    rate = [len(r.latencies) / r.seconds for r in runs]
    return {
        "p50": f"{ms(statistics.median(p50))} ({ms(min(p50))}-{ms(max(p50))})",
        "p95": f"{ms(statistics.median(p95))} ({ms(min(p95))}-{ms(max(p95))})",
        "p95_median_s": statistics.median(p95),
        "max": ms(max(max(r.latencies) for r in runs)),
        "rate": f"{statistics.median(rate):.1f}",
        "cpu": ms(statistics.median(r["cpu"][key] for r in rounds)),  # type: ignore[index]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voters", type=int, default=50)
    parser.add_argument("--votes", type=int, default=10, help="votes per voter")
    parser.add_argument("--think", type=float, default=5.0, help="mean seconds a voter reads a battle")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres-url", default=os.environ.get("GUANACO_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if not args.postgres_url:
        parser.error("give --postgres-url or set GUANACO_TEST_POSTGRES_URL (scripts/postgres-test-db.sh)")
    args.load_start = os.getloadavg()[0]
    results: dict[str, list[dict[str, object]]] = {}
    for kind in ("postgresql", "sqlite"):
        results[kind] = []
        for repeat in range(args.repeats):
            found = one_round(kind, args.postgres_url, args, saturate=kind == "postgresql")
            results[kind].append(found)
            shapes = ", ".join(
                f"{name} p95 {ms(load.percentile(0.95))} ms" for name, load in found["loads"].items()
            )
            print(f"{kind} round {repeat + 1}: {found['stored']}/{found['told']} stored, exact={found['exact']}; "
                  f"{shapes}", flush=True)  # fmt: skip
    write_page(results, args)
    every_round = [r for rounds in results.values() for r in rounds]
    return 0 if all(r["exact"] and r["recounted"] == 0 for r in every_round) else 1


def write_page(results: dict[str, list[dict[str, object]]], args: argparse.Namespace) -> None:
    lines = [
        "# Votes under load",
        "",
        f"{args.voters} voters at once, {args.votes} votes each, through the app's HTTP API (Gradio's "
        "queue, raw HTTP, one cookie jar and so one anonymous voter id per voter): each asks for a "
        "battle, votes, and resubmits its first vote (which must not count). The app runs in its own "
        "process on a fresh store per round; the voters are threads of the benchmark's process. "
        f"{len(MODELS)} models x {PROMPTS} prompts. Rate limits are scaled {LIMIT_SCALE}x since every "
        f"voter comes from 127.0.0.1. {args.repeats} rounds per database: medians, with the range over "
        "rounds in brackets. Latency is one vote's round trip (queue join until its result arrives on "
        "the event stream). App CPU is the app process's CPU time over the load divided by the votes "
        "cast (each vote also asks for its battle): what one vote costs the server.",
        "",
        "Load shapes, all on the same app and store within a round:",
        "- **alone**: one voter, no pause (the baseline: latency without contention);",
        f"- **reading**: {args.voters} voters each reading a battle for {args.think:g} s on average "
        "(0.5x to 1.5x) before voting, as people do;",
        f"- **no pause**: {args.voters} voters voting back to back (PostgreSQL only): the saturation "
        f"point, whose latency is mostly queueing behind the other {args.voters - 1}.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, load average {args.load_start:.1f} when "
        "the run began (the voters, the app and the database then share those cores); other work on the "
        "machine raises the latencies, never the exactly-once checks.",
        "",
        "| database | load | voters | p50 ms | p95 ms | max ms | votes/s | app CPU ms per vote |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, rounds in results.items():
        for key in rounds[0]["loads"]:  # type: ignore[union-attr]
            if key == "warm-up":
                continue
            s = summary(rounds, key)
            voters = 1 if key == "alone" else args.voters
            lines.append(
                f"| {kind} | {key} | {voters} | {s['p50']} | {s['p95']} | {s['max']} | {s['rate']} | {s['cpu']} |"
            )
    lines += ["", "| database | votes told recorded | stored | lost | stored twice | resubmissions counted |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for kind, rounds in results.items():
        total = {k: sum(int(r[k]) for r in rounds) for k in ("told", "stored", "lost", "extra", "recounted")}
        lines.append(f"| {kind} | {total['told']} | {total['stored']} | {total['lost']} | {total['extra']} "
                     f"| {total['recounted']} |")  # fmt: skip
    reading, alone = summary(results["postgresql"], "reading"), summary(results["postgresql"], "alone")
    p95 = float(reading["p95_median_s"])
    exact = all(r["exact"] for rounds in results.values() for r in rounds)
    failures = [f for rounds in results.values() for r in rounds for f in r["failures"]]  # type: ignore[union-attr]
    lines += [
        "",
        f"PostgreSQL, {args.voters} voters reading and voting: p95 vote latency **{ms(p95)} ms**, "
        f"{'under' if p95 < 0.3 else 'over'} the 300 ms target, {p95 / float(alone['p95_median_s']):.1f}x "
        "the p95 of one voter alone.",
        "Every vote the app said it recorded is in the store exactly once, none lost, in every round "
        "and load shape."
        if exact
        else f"NOT exactly once: {failures[:5]}",
        "",
        "Reproduce: `GUANACO_TEST_POSTGRES_URL=... .venv/bin/python bench/votes_load.py "
        f"--voters {args.voters} --votes {args.votes} --think {args.think:g} --repeats {args.repeats}`",
        "",
    ]
    OUT.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
