"""Many people voting at once through the app's HTTP API: the load of bench/votes_load.py and of
its fast variant in tests/test_app_concurrency.py.

Each voter is its own "browser" (:class:`tests.gradio_http.RawGradio`: its own cookie, so its own
anonymous id), asks for a battle, votes, and resubmits its first vote (which must not count). The
result says what each voter was told was recorded, so a caller can check the store holds exactly
that: every vote once, none lost. Run as a module, it serves the app in a process of its own:
``python -m tests.app_load DB_URL PORT LIMIT_SCALE``.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from arena.query.judgments import read_judgments
from arena.webguard import VOTER_COOKIE
from tests.gradio_http import VOTE_APIS, RawGradio

PROJECT = Path(__file__).resolve().parents[1]


@dataclass
class LoadResult:
    """What the voters were told: votes recorded per (judge, verdict), vote latencies in seconds,
    resubmissions that were (wrongly) counted, and the wall time of the whole load."""

    recorded: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    recounted: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def vote_load(url: str, voters: int, votes_each: int, think: float = 0.0) -> LoadResult:
    """`voters` people at once, `votes_each` battles each; every voter starts together. `think` is
    the mean seconds a voter reads a battle before voting (uniform over 0.5x to 1.5x; 0: none)."""
    result = LoadResult()
    lock = threading.Lock()
    start = threading.Barrier(voters)

    def one_voter(number: int) -> None:
        pause = random.Random(number)
        client = RawGradio(url)
        judge = "human:anon-" + client.http.cookies[VOTER_COOKIE].partition(".")[0]
        start.wait()
        try:
            for i in range(votes_each):
                shown = client.api("next_battle")
                if not shown.success:
                    raise RuntimeError(f"next_battle: {shown.error}")
                api = list(VOTE_APIS)[(number + i) % len(VOTE_APIS)]
                time.sleep(think * pause.uniform(0.5, 1.5))
                began = time.perf_counter()
                voted = client.api(api)
                took = time.perf_counter() - began
                if "Vote recorded" not in voted.text():
                    raise RuntimeError(f"{api}: {voted.text()[:200]}")
                again = client.api("vote_a") if i == 0 else None
                with lock:
                    result.recorded[(judge, VOTE_APIS[api])] += 1
                    result.latencies.append(took)
                    result.recounted += bool(again and "Vote recorded" in again.text())
        except Exception as err:  # reported, so that a lost vote is a failure and not a hang
            with lock:
                result.failures.append(f"voter {number}: {err}")
        finally:
            client.close()

    began = time.perf_counter()
    with ThreadPoolExecutor(voters) as pool:
        list(pool.map(one_voter, range(voters)))
    result.seconds = time.perf_counter() - began
    return result


def stored_votes(store) -> Counter:  # noqa: ANN001 - arena.store.Store
    frame = read_judgments(store, judge="human")
    assert not frame.duplicated(["judge", "generation_1", "generation_2"]).any()
    return Counter(zip(frame["judge"], frame["verdict"], strict=True))


def serve_in_subprocess(db_url: str, port: int, limit_scale: float) -> subprocess.Popen:
    """The app in a process of its own (as in production), once it answers on 127.0.0.1:`port`."""
    command = [sys.executable, "-m", "tests.app_load", db_url, str(port), str(limit_scale)]
    server = subprocess.Popen(command, cwd=PROJECT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/config", timeout=2)
            return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"the app did not start on port {port}")


if __name__ == "__main__":
    from arena.store import Store
    from arena.webapp import Exposure, serve
    from arena.webguard import RateLimits

    url, port, scale = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    serve(Store(url), Exposure(port=port, limits=RateLimits().scaled(scale)))
