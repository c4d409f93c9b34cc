"""scripts/postgres-test-db.sh, which `make test` runs first: it prints a database URL or fails
loudly, so that the PostgreSQL half of the suite can never be skipped without anyone noticing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres-test-db.sh"
BASH = "/bin/bash"


def run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(SCRIPT)], env={"HOME": "/tmp", **env}, capture_output=True, text=True,
                          timeout=60, cwd="/tmp")  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="the script's install path runs as root only")
def test_fails_with_the_reason_when_postgresql_cannot_be_installed_or_started() -> None:
    done = run({"PATH": "/nonexistent"})  # no apt-get, no PostgreSQL tools: nothing can start
    assert done.returncode != 0 and done.stdout == ""
    assert "PostgreSQL is not installed and apt-get could not install it: " in done.stderr
    assert "apt-get: command not found" in done.stderr


def test_a_given_database_that_does_not_answer_fails_the_run() -> None:
    done = run(
        {"PATH": "/usr/bin:/bin", "GUANACO_TEST_POSTGRES_URL": "postgresql+psycopg://u:p@127.0.0.1:1/x"}
    )
    assert done.returncode != 0 and done.stdout == ""
    assert "that database does not answer" in done.stderr


def test_makefile_stops_when_the_script_fails() -> None:
    makefile = (SCRIPT.parents[1] / "Makefile").read_text()
    recipe = next(line.strip() for line in makefile.splitlines() if "postgres-test-db.sh" in line)
    line = recipe.replace("$$", "$").replace("bash scripts/postgres-test-db.sh", "false")
    line = line.replace("$(BIN)/python -m pytest", "echo ran-the-tests")
    done = subprocess.run([BASH, "-c", line], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "ran-the-tests" not in done.stdout
