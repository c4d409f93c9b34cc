"""What every benchmark script reports the same way: timings with their spread, peak memory, machine."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHARED_NOTE = (
    "Measured on the project's shared machine: {cpus} CPU cores used at the same time by other "
    "work (load average {load_start:.1f} at the start, {load_end:.1f} at the end), so absolute times "
    "are inflated and noisy; the ratios compare the two sides measured in the same run."
)
QUIET_NOTE = (
    "Measured on the project's machine, {cpus} CPU cores with no other heavy work (load average "
    "{load_start:.1f} at the start, {load_end:.1f} at the end, the benchmark's own included); the "
    "ratios compare the two sides measured in the same run."
)


@dataclass(frozen=True)
class Timing:
    """Wall-clock and CPU seconds of one call (CPU: this process, all its threads)."""

    wall: float
    cpu: float


def timed(call: Callable[[], Any]) -> tuple[Any, Timing]:
    """Run `call` once; its result and how long it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def spread(values: list[float], digits: int = 2) -> str:
    """'median (min-max)' of repeated measurements, or the single value."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB: Linux's VmHWM, which (unlike ru_maxrss, kept
    across exec) starts afresh in a child process."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_page(path: Path, lines: list[str]) -> None:
    """Write a benchmark's page (its folder made first) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}")


def machine_note(load_start: float) -> str:
    """The machine line every page ends with."""
    import numpy as np

    load_end = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    # other work shows in the load before the run; at its end the load includes the run's own threads
    template = QUIET_NOTE if load_start <= cpus / 2 and load_end <= cpus else SHARED_NOTE
    note = template.format(cpus=cpus, load_start=load_start, load_end=load_end)
    return (
        f"{note} Machine: {platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}."
    )


def oa_release_frame(release: Any) -> Any:
    """The QLoRA release's OA GPT-4 judgments as a judgments frame, through the real import and store."""
    import io
    import tempfile

    from arena.import_qlora import import_qlora_release
    from arena.query.judgments import read_judgments
    from arena.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        with contextlib.redirect_stdout(io.StringIO()):  # the import's own report is not the point here
            import_qlora_release(store, release, progress=False)
        frame = read_judgments(store, benchmark="oa", judge="gpt-4")
        store.engine.dispose()
    return frame
