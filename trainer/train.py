"""The training loop: 4-bit base + LoRA, token-weighted gradient accumulation, eval, checkpoints, resume.

A plain loop (as nanoGPT) over `accelerate`, so the same code runs on the CPU, one GPU, DDP or
FSDP. Resuming is exact: the adapter, optimizer, scheduler, step and every RNG are restored, and
the batch order is a function of (seed, epoch), so a resumed run takes the very batches it would
have taken had it not stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import pickle
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from foundations.errors import loading_model
from trainer import model as qmodel
from trainer.batches import collate, collate_packed, epoch_batches, packed_rows, target_count
from trainer.card import write_card
from trainer.config import TrainConfig
from trainer.data import load_splits
from trainer.encode import Encoder, Example
from trainer.errors import TrainError
from trainer.formats import DataReport, train_on_for
from trainer.loss import add_token_loss

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
METRICS_FILE = "metrics.json"


@dataclass
class Prepared:
    """Tokenized splits and what the data pipeline dropped on the way."""

    train: list[Example]
    eval: list[Example]
    reports: dict[str, DataReport]


@dataclass
class History:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def last(self, key: str) -> Any:
        return next((row[key] for row in reversed(self.rows) if key in row), None)


def load_tokenizer(cfg: TrainConfig) -> Any:
    from transformers import AutoTokenizer

    with loading_model(cfg.base):  # the first touch of the hub: offline or a wrong name ends here
        tokenizer = AutoTokenizer.from_pretrained(qmodel.resolve_base(cfg.base))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def prepare_data(cfg: TrainConfig, tokenizer: Any) -> Prepared:
    train_convs, eval_convs, train_report, eval_report = load_splits(
        cfg.data, cfg.format, cfg.eval_data, cfg.eval_fraction
    )
    train_convs = train_convs[: cfg.max_train_samples]
    eval_convs = eval_convs[: cfg.max_eval_samples]
    train_on = train_on_for(cfg.train_on, train_report.format)
    log.info("loss on %s tokens (train_on %s, %s data)", train_on, cfg.train_on, train_report.format)
    encoder = Encoder(tokenizer, cfg.template, train_on, cfg.max_seq_len, cfg.eos)
    prepared = Prepared(
        encoder.encode_all(train_convs, train_report),
        encoder.encode_all(eval_convs, eval_report),
        {"train": train_report, "eval": eval_report},
    )
    if not prepared.train:
        raise TrainError(
            f"no training examples in {cfg.data} ({train_report.summary()}); check --data/--format"
        )
    return prepared


def method_module(cfg: TrainConfig) -> Any:
    """What builds the quantized base and its adapter: trainer.model (QLoRA) or trainer.qalora."""
    if cfg.method == "qalora":
        from trainer import qalora

        return qalora
    return qmodel


def make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Paged AdamW 32-bit (bitsandbytes) as the paper; unpaged on the CPU, where there is no
    unified memory to page to."""
    import bitsandbytes as bnb

    kwargs = {
        "lr": cfg.learning_rate,
        "betas": (cfg.adam_beta1, cfg.adam_beta2),
        "weight_decay": cfg.weight_decay,
    }
    if cfg.optim == "adamw_torch":
        return torch.optim.AdamW(params, **kwargs)
    if cfg.optim == "paged_adamw_32bit" and qmodel.on_gpu():
        return bnb.optim.PagedAdamW32bit(params, **kwargs)
    if cfg.optim == "paged_adamw_32bit":
        log.info("no GPU: paged AdamW falls back to unpaged AdamW 32-bit")
    return bnb.optim.AdamW32bit(params, **kwargs)


def rng_state() -> dict[str, Any]:
    """Every RNG's state in types `torch.load(weights_only=True)` reads (numpy's key array as ints)."""
    name, keys, *rest = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), *rest),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_state(path: Path) -> Any:
    """A checkpoint file, read as tensors and plain values only: unpickling it can run no code."""
    try:
        return torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        lines = str(err).splitlines()
        reason = next(
            (line.split("error:")[-1].strip() for line in lines if "Unpickler error" in line), lines[0]
        )
        raise TrainError(
            f"{path}: not a checkpoint this trainer wrote, not loaded ({reason.split('. ')[0][:200]}); "
            "resume from another checkpoint-N or start the run again"
        ) from err


def checkpoints(out: Path) -> list[Path]:
    found = [p for p in out.glob("checkpoint-*") if (p / STATE_FILE).is_file() and p.name[11:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[11:]))


def token_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed next-token cross-entropy over the target tokens (divided by the caller, so gradient
    accumulation weighs every token equally however the tokens fall into micro-batches), through
    the forward that :func:`trainer.loss.add_token_loss` gave the model: no full logits are held."""
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    return model(**inputs, loss_labels=batch["labels"])


class Loop:
    """One training run. Build it, then :meth:`run`; `resume` picks up the latest checkpoint in `out`."""

    def __init__(self, cfg: TrainConfig, resume: bool = False) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from transformers import get_scheduler

        self.cfg = cfg
        self.out = Path(cfg.out)
        dtype = qmodel.compute_dtype(cfg)
        self.accelerator = Accelerator(
            cpu=not qmodel.on_gpu(),
            mixed_precision="bf16" if dtype == torch.bfloat16 else "fp16" if dtype == torch.float16 else "no",
            log_with=None if cfg.report_to == "none" else cfg.report_to,
            project_dir=str(self.out),
        )
        self.checkpoint = self._checkpoint_to_resume() if resume else None
        set_seed(cfg.seed)
        self.tokenizer = load_tokenizer(cfg)
        self.data = prepare_data(cfg, self.tokenizer)
        device_map = {"": self.accelerator.device} if qmodel.on_gpu() and not qmodel.under_fsdp() else None
        self.method = method_module(cfg)
        base = self.method.load_base(cfg, device_map=device_map)
        add_token_loss(base)
        model = self.method.add_lora(base, cfg, adapter=self.checkpoint)
        self.footprint = self.method.footprint(model, cfg)
        optimizer = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
        self.scheduler = get_scheduler(cfg.lr_scheduler, optimizer, cfg.warmup_steps, cfg.max_steps)
        self.step = 0
        self.history = History()
        state = None
        if self.checkpoint is not None:
            state = load_state(self.checkpoint / STATE_FILE)
            optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step = state["step"]
            self.history = History(state["history"])
        if qmodel.under_fsdp():
            qmodel.prepare_for_fsdp(model, self.accelerator)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        if state is not None:
            rank_file = self.checkpoint / f"rng-{self.rank}.pt"
            set_rng_state(load_state(rank_file) if rank_file.is_file() else state["rng"])
        self._epochs: dict[int, list[list[int]]] = {}
        self.per_epoch = len(self._batches(0))

    def _checkpoint_to_resume(self) -> Path:
        found = checkpoints(self.out)
        if not found:
            raise TrainError(
                f"{self.out} has no checkpoint-N folder to resume from; start it without --resume"
            )
        return found[-1]

    # ------------------------------------------------------------ batches

    def _batches(self, epoch: int) -> list[list[list[int]]]:
        """This process's share of one epoch's batches (every process gets as many); a batch is a
        list of rows, a row the indices of its examples (one each unless packing)."""
        if epoch not in self._epochs:
            cfg, lengths = self.cfg, [len(e.input_ids) for e in self.data.train]
            if cfg.packing:
                rows = packed_rows(lengths, cfg.max_seq_len, cfg.seed, epoch)
                every = [rows[i : i + cfg.batch_size] for i in range(0, len(rows), cfg.batch_size)]
            else:
                grouped = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch, cfg.group_by_length)
                every = [[[i] for i in batch] for batch in grouped]
            per_rank = max(len(every) // self.world, 1)
            self._epochs = {epoch: every[self.rank :: self.world][:per_rank] or every[:1]}
        return self._epochs[epoch]

    def micro_batch(self, number: int) -> tuple[dict[str, torch.Tensor], int]:
        """Micro-batch `number` of the whole run (epochs laid end to end), and its real tokens."""
        epoch, index = divmod(number, self.per_epoch)
        rows = [[self.data.train[i] for i in row] for row in self._batches(epoch)[index]]
        pad = self.tokenizer.pad_token_id
        batch = collate_packed(rows, pad) if self.cfg.packing else collate([r[0] for r in rows], pad)
        real_tokens = sum(len(e.input_ids) for row in rows for e in row)
        return {k: v.to(self.accelerator.device) for k, v in batch.items()}, real_tokens

    # ------------------------------------------------------------ steps

    def train_step(self) -> dict[str, float]:
        """One optimizer step over `grad_accum` micro-batches; the loss is the mean over all their
        target tokens (on all processes)."""
        accum = self.cfg.grad_accum
        micro, counts = zip(*(self.micro_batch(self.step * accum + j) for j in range(accum)), strict=True)
        targets = self._sum(sum(target_count(b) for b in micro))
        real_tokens = self._sum(sum(counts))
        scale = self.world / max(targets, 1)
        loss_sum = 0.0
        self.model.train()
        for j, batch in enumerate(micro):
            sync = contextlib.nullcontext() if j == accum - 1 else self.accelerator.no_sync(self.model)
            with sync, self.accelerator.autocast():
                loss = token_loss(self.model, batch)
                self.accelerator.backward(loss * scale)
            loss_sum += float(loss.detach())
        grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {
            "loss": self._sum(loss_sum) / max(targets, 1),
            "grad_norm": float(grad_norm),
            "lr": self.scheduler.get_last_lr()[0],
            "real_tokens": real_tokens,
        }

    def _sum(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor(float(value), device=self.accelerator.device)
        return float(self.accelerator.reduce(tensor, reduction="sum"))

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean loss per target token over the held-out split (None when there is none)."""
        if not self.data.eval:
            return None
        self.model.eval()
        order = sorted(range(len(self.data.eval)), key=lambda i: len(self.data.eval[i].input_ids))
        size = self.cfg.eval_batch_size
        batches = [order[i : i + size] for i in range(0, len(order), size)][self.rank :: self.world]
        total, count = 0.0, 0
        for indices in batches:
            batch = collate([self.data.eval[i] for i in indices], self.tokenizer.pad_token_id)
            batch = {k: v.to(self.accelerator.device) for k, v in batch.items()}
            with self.accelerator.autocast():
                total += float(token_loss(self.model, batch))
            count += target_count(batch)
        self.model.train()
        return self._sum(total) / max(self._sum(count), 1)

    # ------------------------------------------------------------ saving

    def save_checkpoint(self) -> Path:
        """Adapter, optimizer, scheduler, step, history and RNG (one RNG file per process)."""
        folder = self.out / f"checkpoint-{self.step}"
        self._save_adapter(folder)
        self.accelerator.wait_for_everyone()
        torch.save(rng_state(), folder / f"rng-{self.rank}.pt")
        if self.accelerator.is_main_process:
            state = {
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "history": self.history.rows,
                "rng": rng_state(),
            }
            torch.save(state, folder / STATE_FILE)
            for old in checkpoints(self.out)[: -self.cfg.save_total_limit]:
                shutil.rmtree(old)
        self.accelerator.wait_for_everyone()
        return folder

    def _save_adapter(self, folder: Path) -> None:
        state_dict = self.accelerator.get_state_dict(self.model) if qmodel.under_fsdp() else None
        if self.accelerator.is_main_process:
            folder.mkdir(parents=True, exist_ok=True)
            self.accelerator.unwrap_model(self.model).save_pretrained(folder, state_dict=state_dict)

    def save_outputs(self, metrics: dict[str, Any]) -> None:
        """The run folder: adapter, tokenizer, resolved config, metrics and a model card."""
        self._save_adapter(self.out)
        if self.accelerator.is_main_process:
            self.tokenizer.save_pretrained(self.out)
            self.cfg.save(self.out)
            (self.out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=float))
            write_card(self.out, self.cfg, metrics)

    # ------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        cfg, acc = self.cfg, self.accelerator
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            cfg.save(self.out)
            for split, report in self.data.reports.items():
                log.info("%s data: %s", split, report.summary())
            log.info(self.method.describe(self.footprint, cfg))
        if cfg.report_to != "none":
            acc.init_trackers(self.out.name, config=_scalars(cfg.to_dict()))
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="training", disable=not acc.is_main_process)
        started, tokens = time.perf_counter(), 0
        while self.step < cfg.max_steps:
            row = self.train_step()
            tokens += row.pop("real_tokens")
            row.update(step=self.step, tokens_per_s=tokens / (time.perf_counter() - started))
            if self.step % cfg.eval_steps == 0 or self.step == cfg.max_steps:
                row["eval_loss"] = self.evaluate()
            self.history.add(row)
            if self.step % cfg.logging_steps == 0 or "eval_loss" in row:
                acc.log({k: v for k, v in row.items() if v is not None}, step=self.step)
            bar.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
            bar.update(1)
            if self.step % cfg.save_steps == 0 or self.step == cfg.max_steps:
                self.save_checkpoint()
        bar.close()
        metrics = self.metrics()
        self.save_outputs(metrics)
        acc.end_training()
        return metrics

    def metrics(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "train_loss": self.history.last("loss"),
            "eval_loss": self.history.last("eval_loss"),
            "tokens_per_s": self.history.last("tokens_per_s"),
            "model": self.footprint,
            "data": {split: report.to_dict() for split, report in self.data.reports.items()},
            "history": self.history.rows,
        }


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    """Trackers take scalars only; lists and None become strings."""
    return {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in values.items()}


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train (or continue) one run and return its metrics; the outputs are written under `cfg.out`."""
    if not resume and checkpoints(Path(cfg.out)):
        raise TrainError(
            f"{cfg.out} already holds checkpoints: pass --resume {cfg.out}, or choose another --out"
        )
    metrics = Loop(cfg, resume=resume).run()
    if not math.isfinite(metrics["train_loss"]):
        raise TrainError("the training loss is not finite; lower --learning-rate or check the data")
    return metrics
