"""The whole mission on embedded defaults: train, generate, judge, rate, release, vote.

The demo is nothing but a sequence of ordinary `guanaco` commands, printed before each runs, so a
newcomer sees exactly what to type for a real run. Every command is idempotent, so a second
`make demo` reuses what the first one made.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from arena.cli import UserError

DEMO_MODELS = ("smollm2", "smollm2-nf4", "smollm2-guanaco")
EMBEDDED_JUDGE_WARNING = (
    "No OPENAI_API_KEY: judging with the embedded SmolLM2-135M served on 127.0.0.1. A 135M judge's "
    "verdicts are only a demonstration of the pipeline, not a measurement of the models."
)


@dataclass
class DemoConfig:
    """What the demo runs. Defaults finish in well under 20 minutes on 2 CPU cores."""

    workdir: Path = Path("demo")
    prompts: int = 8
    train_steps: int = 30
    max_new_tokens: int = 96
    judge_max_tokens: int = 64
    orderings: int = 1000
    seed: int = 0
    mirror: Path | None = None
    app: bool = True
    port: int = 7860
    timings: list[tuple[str, float]] = field(default_factory=list)

    @property
    def db(self) -> str:
        return f"sqlite:///{(self.workdir / 'arena.db').resolve()}"


def find_mirror(explicit: Path | None) -> Path | None:
    """A local copy of the public benchmark files: --from, GUANACO_DATA_MIRROR, or ../shared/data."""
    candidates = [explicit, os.environ.get("GUANACO_DATA_MIRROR"), Path("..") / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "qlora-eval").is_dir():
            return Path(candidate).resolve()
    return None


def stages(cfg: DemoConfig) -> list[tuple[str, list[list[str]] | Callable[[], None]]]:
    """The demo's stages, each a list of `guanaco` command lines (or a function for the app)."""
    db = ["--db", cfg.db]
    run_dir = cfg.workdir / "runs" / "smollm2-guanaco"
    out = cfg.workdir / "out"
    benchmark = "vicuna" if cfg.mirror else "sample"
    prompt_cmds = (
        [["data", "fetch", "vicuna", "--from", str(cfg.mirror), *db]] if cfg.mirror else [["data", "sample", *db]]
    )
    judge_model = "gpt-4" if os.environ.get("OPENAI_API_KEY") else "smollm2"
    judge = ["judge", "--benchmark", benchmark, "--models", ",".join(DEMO_MODELS), "--judge-model", judge_model,
             "--template", "qlora-vicuna", "--orders", "both", "--concurrency", "2",
             "--max-tokens", str(cfg.judge_max_tokens), "--seed", str(cfg.seed), *db]  # fmt: skip
    if judge_model == "smollm2":
        judge += ["--serve-local", "smollm2"]
    board = ["leaderboard", "--benchmark", benchmark, "--judge", judge_model, "--method", "elo",
             "--orderings", str(cfg.orderings), "--seed", str(cfg.seed), *db]  # fmt: skip
    return [
        ("embedded model", [["models", "pull", "smollm2", *db]]),
        ("prompts", prompt_cmds),
        ("train QLoRA adapter", [["train", "--preset", "smoke", "--max-steps", str(cfg.train_steps),
                                  "--out", str(run_dir)]]),  # fmt: skip
        ("register contestants", [
            ["models", "add", "smollm2-nf4", "--base", "smollm2", "--bits", "4", *db],
            ["models", "add", "smollm2-guanaco", "--adapter", str(run_dir), "--bits", "4", *db],
        ]),
        ("generate", [["generate", "--benchmark", benchmark, "--models", ",".join(DEMO_MODELS),
                       "--backend", "transformers", "--limit", str(cfg.prompts), "--max-new-tokens",
                       str(cfg.max_new_tokens), "--seed", str(cfg.seed), *db]]),  # fmt: skip
        ("judge both orders", [judge]),
        ("leaderboard", [
            board + ["--format", "table", "--plot", str(out / "elo.png"), "--heatmap", str(out / "winrate.png")],
            board[:4] + ["--method", "bt", "--format", "md", "--out", str(out / "leaderboard.md"), *db],
        ]),
        ("release bundle", [["release", "--out", str(out / "release"), *db]]),
    ]


def run_demo(cfg: DemoConfig, run: Callable[[list[str]], int] | None = None) -> list[tuple[str, float]]:
    """Run every stage in order; stop at the first failing command with its exit status."""
    from arena.cli import main as guanaco

    run = run or guanaco
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    cfg.mirror = find_mirror(cfg.mirror)
    if not os.environ.get("OPENAI_API_KEY"):
        print(f"note: {EMBEDDED_JUDGE_WARNING}")
    for name, commands in stages(cfg):
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        for argv in commands:
            print("$ guanaco " + shlex.join(argv), flush=True)
            status = run(argv)
            if status:
                raise UserError(f"demo stage '{name}' failed (exit {status}); fix the error above and rerun")
        cfg.timings.append((name, time.perf_counter() - started))
    print("\n=== timings ===")
    for name, seconds in cfg.timings:
        print(f"{name:<24} {seconds:7.1f} s")
    print(f"{'total':<24} {sum(s for _, s in cfg.timings):7.1f} s")
    sys.stdout.flush()
    return cfg.timings
