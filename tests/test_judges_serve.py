"""Child servers (the local judge) never outlive the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from judges.serve import free_port

PROJECT = Path(__file__).resolve().parents[1]
PARENT = """
import sys, time
from judges.serve import child_server
port = sys.argv[1]
cmd = [sys.executable, "-m", "tests.scripted_server", "--port", port, "--until-signal"]
with child_server(cmd, f"http://127.0.0.1:{port}", 60) as proc:
    print(proc.pid, flush=True)
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1]
if sys.platform.startswith("linux"):
    SIGNALS.append(signal.SIGKILL)  # even then: the kernel's parent-death signal


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_child_server_stops_when_its_parent_is_signalled(sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(free_port())], env=env, cwd=PROJECT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.send_signal(sig)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), f"the child server {child} survived {sig.name} of its parent"
    finally:
        parent.kill()
        parent.wait()
