"""The prepared GPU check on a machine without CUDA: it stops at once and says why, and `--plan`
says what it would run. The CUDA paths themselves run only on a GPU machine (docs/gpu.md)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

PROJECT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT / "scripts" / "gpu-check.sh"

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})  # fmt: skip


@no_cuda
def test_without_cuda_the_check_stops_at_once_with_the_reason(tmp_path: Path) -> None:
    start = time.perf_counter()
    done = run(str(tmp_path / "out"))
    assert done.returncode == 3
    assert "no CUDA device" in done.stderr and "docs/gpu.md" in done.stderr and "--plan" in done.stderr
    assert not (tmp_path / "out").exists(), "nothing is written when nothing ran"
    assert time.perf_counter() - start < 60, "it must not install wheels or build models first"


@no_cuda
def test_the_python_entry_point_refuses_without_cuda_too(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(PROJECT / "scripts" / "gpu_check.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 3 and "no CUDA device" in done.stderr
    assert not any(tmp_path.iterdir())


def test_plan_names_every_check_and_its_figures() -> None:
    done = run("--plan")
    assert done.returncode == 0, done.stderr
    expected = ["train", "paged AdamW", "resumed", "merge", "generate", "4-bit", "one prompt at a time",
                "vllm", "multi-gpu", "ddp.yaml", "fsdp_qlora.yaml", "gpu-check.json", "gpu-check.md"]  # fmt: skip
    assert [words for words in expected if words not in done.stdout] == []


def test_prompts_for_the_generation_check_are_distinct() -> None:
    sys.path.insert(0, str(PROJECT / "scripts"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    prompts = gpu_check.sample_prompts()
    assert len(prompts) == gpu_check.PROMPTS == len(set(prompts))
