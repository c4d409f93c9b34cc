"""Many people voting at once through the app's HTTP API: every vote stored, none twice."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from gradio_client import Client

from arena.store import Store
from tests.arena_seed import running_app, seed_arena

CLIENTS = 8
VOTES_EACH = 4
ENDPOINTS = {"/vote_a": "1", "/vote_b": "2", "/vote_tie": "tie", "/vote_both_bad": "both_bad"}


def voter(url: str, number: int) -> list[tuple[str, str]]:
    """One person's session: `VOTES_EACH` battles, the first vote resubmitted."""
    client = Client(url, verbose=False)
    annotator = f"voter{number}"
    sent = []
    for i in range(VOTES_EACH):
        client.predict(annotator, api_name="/next_battle")
        endpoint = list(ENDPOINTS)[(number + i) % len(ENDPOINTS)]
        first = client.predict(annotator, api_name=endpoint)
        assert "Vote recorded" in first, first
        if i == 0:
            again = client.predict(annotator, api_name="/vote_a")  # a resubmission must not count
            assert "already counted" in again, again
        sent.append((f"human:{annotator}", ENDPOINTS[endpoint]))
    client.close()
    return sent


def test_concurrent_voters_lose_nothing_and_count_nothing_twice(store: Store) -> None:
    seed_arena(store, prompts=6)
    with running_app(store) as url, ThreadPoolExecutor(CLIENTS) as pool:
        sent = [vote for votes in pool.map(voter, [url] * CLIENTS, range(CLIENTS)) for vote in votes]
    stored = store.judgments(judge="human")
    assert len(sent) == CLIENTS * VOTES_EACH
    assert len(stored) == len(sent)
    assert Counter(zip(stored["judge"], stored["verdict"], strict=True)) == Counter(sent)
    assert not stored.duplicated(["judge", "generation_1", "generation_2"]).any()
    assert (stored["template_id"] == "human-vote").all() and (stored["status"] == "ok").all()
