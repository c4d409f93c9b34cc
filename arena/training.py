"""The training workflow (`guanaco train`): the trainer's run under a `train` run record.

`trainer/` never imports `arena`, so the record the store keeps of a training run is written here."""

from __future__ import annotations

from typing import Any

from arena.query.runs import finish_run, start_run
from arena.store import Store
from trainer.config import TrainConfig


def train_recorded(store: Store, cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train (or continue) `cfg`'s run; the run record keeps its whole config and ends done or
    failed. Returns the trainer's metrics."""
    from trainer.train import train

    with store.session() as session:
        run_id = start_run(session, "train", cfg.out, cfg.to_dict()).id
    status = "failed"
    try:
        metrics = train(cfg, resume=resume)
        status = "done"
    finally:
        with store.session() as session:
            finish_run(session, run_id, status)
    return metrics
