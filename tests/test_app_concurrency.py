"""The app's HTTP API: many people voting at once (every vote stored, none twice), and `app.py` with logins."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client

from arena.cli import main
from arena.query.judgments import read_judgments
from arena.store import Store
from arena.webguard import RateLimits
from tests.app_load import stored_votes, vote_load
from tests.arena_seed import running_app, seed_arena

PROJECT = Path(__file__).resolve().parents[1]
VOTERS = 8
VOTES_EACH = 4


def test_concurrent_voters_lose_nothing_and_count_nothing_twice(store: Store) -> None:
    """The fast variant of bench/votes_load.py (fewer voters; on SQLite and PostgreSQL)."""
    seed_arena(store, prompts=6)
    with running_app(store, limits=RateLimits().scaled(10)) as url:
        result = vote_load(url, VOTERS, VOTES_EACH)
    assert result.failures == []
    assert sum(result.recorded.values()) == VOTERS * VOTES_EACH and result.recounted == 0
    assert stored_votes(store) == result.recorded
    assert len({judge for judge, _ in result.recorded}) == VOTERS
    stored = read_judgments(store, judge="human")
    assert (stored["template_id"] == "human-vote").all() and (stored["status"] == "ok").all()


def test_app_py_serves_logged_in_voters_on_localhost(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python app.py --auth-file`: people log in and vote under their user name."""
    seed_arena(Store(db_url))
    users = tmp_path / "users.txt"
    for name, password in (("ann", "secret-ann"), ("bob", "hunter2-bob")):
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        assert main(["users", "add", name, "--auth-file", str(users), "--password-stdin"]) == 0
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
        client = Client(url, auth=("ann", "secret-ann"), verbose=False)
        client.predict(api_name="/next_battle")
        assert "Vote recorded" in client.predict(api_name="/vote_b")
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = read_judgments(Store(db_url), judge="human")
    assert stored[["judge", "verdict"]].values.tolist() == [["human:ann", "2"]]
