"""Serve a local Hugging Face model OpenAI-compatibly on 127.0.0.1, for the demo and the real test.

Uses `transformers serve` (FastAPI + uvicorn, shipped with transformers 5) in a child process,
with the model preloaded. Works offline with a local checkpoint directory. Requests must name the
model as the server knows it: the path as given (:func:`served_name`).

    path = ensure_smollm2()
    with serve_local(path) as base_url:
        guanaco judge ... --judge-model {path} --judge-name smollm2 --base-url {base_url}
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def served_name(model_path: str | Path) -> str:
    """The model name requests to a :func:`serve_local` server must use."""
    return str(model_path)


@contextmanager
def serve_local(
    model_path: str | Path, port: int = 0, *, device: str = "cpu", startup_timeout_s: float = 180.0
) -> Iterator[str]:
    """Start `transformers serve` for `model_path` on 127.0.0.1 and yield its base URL (…/v1);
    stop it when the block ends. `port=0` picks a free port."""
    port = port or free_port()
    cmd = [
        sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_path),
        "--host", HOST, "--port", str(port), "--device", device, "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    with child_server(cmd, f"http://{HOST}:{port}", startup_timeout_s, env):
        yield f"http://{HOST}:{port}/v1"


@contextmanager
def child_server(
    cmd: list[str], root: str, startup_timeout_s: float, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """Run `cmd` (a server answering `root`/health) for the duration of the block, and never
    longer than this process: the block ends, and so stops the server, on SIGTERM and SIGHUP as
    on Ctrl-C; on Linux the kernel also sends it SIGTERM if this process dies of anything else,
    SIGKILL included. It runs in a session of its own, so a terminal's Ctrl-C reaches this process
    only, which then stops the server in order."""
    with tempfile.TemporaryFile() as log, _stop_signals_raise():
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent(),
        )  # fmt: skip
        try:
            _wait_healthy(proc, root, startup_timeout_s, log)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals whose default action ends Python without running `finally` blocks."""


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise SystemExit (as SIGINT raises
    KeyboardInterrupt), so that cleanup runs; handlers someone else installed are left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig, handler in previous.items():
        if handler == signal.SIG_DFL:
            signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to send the child SIGTERM when its parent dies (prctl
    PR_SET_PDEATHSIG); None elsewhere. libc is loaded here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec


PR_SET_PDEATHSIG = 1


def _wait_healthy(proc: subprocess.Popen, root: str, timeout_s: float, log: object) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"`transformers serve` exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"`transformers serve` did not answer on {root} within {timeout_s:.0f}s")


def main() -> None:
    """`python -m judges.serve MODEL_PATH [PORT]`: serve until interrupted."""
    path, port = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8000
    with serve_local(path, port) as url:
        print(f"serving {path} at {url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
