"""The sweep's training stage: one adapter per point, resumable, with its time and peak memory.

A point is finished when its folder holds the completion marker, written atomically after the
trainer wrote its outputs; an unfinished point continues from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from arena.sweep.config import Point
from foundations.errors import UserError

log = logging.getLogger(__name__)

MARKER = "SWEEP_DONE.json"
"""Written last, atomically, into a point's folder: its presence means the point is finished."""
MEMORY_NOTE = {
    "gpu": "peak GPU memory allocated by torch",
    "cpu": "peak resident memory of the process (includes the Python runtime)",
}


def finished(point: Point) -> dict[str, Any] | None:
    """The point's training record when its marker is there (and readable), else None."""
    marker = point.folder / MARKER
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:  # cannot happen with an atomic write; retrain rather than trust it
        log.warning("%s is not valid JSON: %s will be trained again", marker, point.name)
        return None


def write_marker(folder: Path, record: dict[str, Any]) -> Path:
    """Write the completion marker atomically: a temporary file, flushed to disk, renamed into place."""
    marker = folder / MARKER
    temporary = folder / f".{MARKER}.tmp"
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, default=float)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, marker)
    return marker


def train_point(point: Point) -> dict[str, Any]:
    """Train one point (continuing from its last checkpoint if a sweep was killed), or read the
    record of a finished one. Training time is wall time; on a resumed point it is scaled from the
    steps this run took to the whole run, and flagged as estimated."""
    from trainer.formats import DataError
    from trainer.train import TrainError, checkpoints, train

    done = finished(point)
    if done is not None:
        return done
    found = checkpoints(point.folder)
    first_step = int(found[-1].name.split("-")[1]) if found else 0
    reset_peak_memory()
    started = time.perf_counter()
    try:
        metrics = train(point.train, resume=bool(found))
    except (DataError, TrainError) as err:
        raise UserError(f"training {point.name}: {err}") from err
    seconds = time.perf_counter() - started
    ran = metrics["step"] - first_step
    if first_step and not ran:
        seconds = None  # only the final save was left: no step was timed
    elif first_step:
        seconds = seconds * metrics["step"] / ran
    memory, kind = peak_memory_mb()
    record = {
        "name": point.name,
        "settings": point.settings,
        "trainable_params": int(metrics["model"]["trainable_params"]),
        "train_seconds": seconds,
        "time_estimated": bool(first_step),
        "peak_memory_mb": memory,
        "memory": MEMORY_NOTE[kind],
        "eval_loss": metrics["eval_loss"],
        "train_loss": metrics["train_loss"],
        "steps": metrics["step"],
    }
    write_marker(point.folder, record)
    return record


def reset_peak_memory() -> None:
    """Start a fresh peak: torch's counter on a GPU; the kernel's high-water mark of this process
    on Linux (writing 5 to /proc/self/clear_refs), so each point's peak is its own."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        log.debug("cannot reset the peak resident memory; later points report the peak so far")


def peak_memory_mb() -> tuple[float | None, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "gpu"
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None, "cpu"
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return (int(found.group(1)) / 1024 if found else None), "cpu"
