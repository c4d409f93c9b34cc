"""The layers of docs/architecture.md at run time: `judges` and `trainer` load without `arena`.

`lint-imports` (in `make lint` and `make test`) checks every import statement against the
contracts in pyproject.toml; this checks what actually gets loaded, in a fresh interpreter, so
that an import made by a dependency or by module-level code cannot bring `arena` in either."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import PROJECT

LOAD_EVERY_MODULE = """
import importlib, json, pkgutil, sys
loaded = []
for package in ("judges", "trainer"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # running it would start the command
            importlib.import_module(info.name)
            loaded.append(info.name)
arena = sorted(name for name in sys.modules if name == "arena" or name.startswith("arena."))
print(json.dumps({"loaded": loaded, "arena": arena}))
"""


def test_judges_and_trainer_import_without_arena():
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_EVERY_MODULE], cwd=PROJECT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"judges.client", "judges.judge", "judges.templates", "trainer.train", "trainer.model"} <= set(
        report["loaded"]
    )
    assert report["arena"] == []
