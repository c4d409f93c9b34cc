"""Each trained point as a contestant: its adapter on its base, with its settings as provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arena.store import Store
from arena.sweep.config import Point, SweepConfig
from arena.sweep.prompts import data_label


def prompt_template(template: str) -> str:
    """The training text of one Alpaca record under the trainer's template, as recorded with
    every contestant (`{instruction}` and `{input}` are joined as the trainer's Alpaca reader does)."""
    from trainer.encode import segments
    from trainer.formats import Turn

    if template != "guanaco":
        return "the tokenizer's chat template; user turn: {instruction}\n\n{input}; assistant turn: {output}"
    conv = (Turn("user", "{instruction}\n\n{input}"), Turn("assistant", "{output}"))
    return "".join(text for text, _ in segments(conv, None, template)) + "<eos>"


def register(store: Store, cfg: SweepConfig, point: Point, record: dict[str, Any]) -> None:
    """The point as a contestant: its adapter on the base at the bits it was trained in, with its
    settings, training metrics and prompt template in the metadata (the release's provenance)."""
    from arena.models import add_local

    t = point.train
    keys = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "bits", "quant_type", "double_quant",
            "learning_rate", "max_steps", "batch_size", "grad_accum", "max_seq_len", "train_on", "template",
            "format", "seed")  # fmt: skip
    sweep = {
        "sweep": cfg.name,
        "settings": point.settings,
        "train": {k: getattr(t, k) for k in keys},
        "base": data_label(cfg.base) if Path(cfg.base).exists() else cfg.base,
        "data": data_label(cfg.data),
        "prompt_template": prompt_template(t.template),
        "metrics": {
            k: record.get(k)
            for k in (
                "trainable_params",
                "train_seconds",
                "time_estimated",
                "peak_memory_mb",
                "memory",
                "eval_loss",
                "steps",
            )
        },  # fmt: skip
    }
    with store.session() as session:
        contestant = add_local(session, point.name, base=t.base, adapter=str(point.folder), bits=t.bits,
                               prompt_format="guanaco" if t.template == "guanaco" else "chat")  # fmt: skip
        contestant.meta = {**contestant.meta, "sweep": sweep}
