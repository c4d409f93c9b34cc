"""The app's HTTP API: many people voting at once (every vote stored, none twice), and `app.py` with logins."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client

from arena.cli import main
from arena.store import Store
from tests.arena_seed import running_app, seed_arena

PROJECT = Path(__file__).resolve().parents[1]
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


def test_app_py_serves_logged_in_voters_on_localhost(db_url: str, tmp_path: Path) -> None:
    """`python app.py --auth-file`: people log in and vote under their user name, whatever they type."""
    seed_arena(Store(db_url))
    users = tmp_path / "users.txt"
    users.write_text("# arena annotators\nann:secret\nbob:hunter2\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "app.py", "--db", db_url, "--port", str(port), "--auth-file", str(users)]
    server = subprocess.Popen(
        command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        assert server.poll() is None, server.stdout.read()
        with pytest.raises(Exception, match="(?i)login|auth|credentials|401"):
            Client(url, auth=("ann", "wrong"), verbose=False)
        client = Client(url, auth=("ann", "secret"), verbose=False)
        client.predict("someone else", api_name="/next_battle")
        assert "Vote recorded" in client.predict("someone else", api_name="/vote_b")
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = Store(db_url).judgments(judge="human")
    assert stored[["judge", "verdict"]].values.tolist() == [["human:ann", "2"]]


def test_bad_auth_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    users = tmp_path / "users.txt"
    users.write_text("ann:secret\nbob\n")
    assert main(["app", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--auth-file", str(users)]) == 2
    assert f"{users}, line 2: expected user:password" in capsys.readouterr().err
