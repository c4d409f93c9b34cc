"""Named recipes: the QLoRA paper's Guanaco scripts (scripts/finetune_guanaco_*.sh) and a CPU smoke run.

Every preset is a partial TrainConfig; what it leaves out keeps the dataclass default (which is
the paper's 7B recipe: NF4 + double quantization, LoRA on all linear layers, constant schedule,
paged AdamW 32-bit, max grad norm 0.3, beta2 0.999, batch 1 x 16, 1875 steps, length grouping).
"""

from __future__ import annotations

from typing import Any

_PAPER: dict[str, Any] = {
    "data": "guanaco",
    "lora_r": 64,
    "lora_alpha": 16.0,
    "lr_scheduler": "constant",
    "batch_size": 1,
    "grad_accum": 16,
    "max_steps": 1875,
    "max_grad_norm": 0.3,
    "adam_beta2": 0.999,
    "optim": "paged_adamw_32bit",
    "group_by_length": True,
    "gradient_checkpointing": True,
    "eval_steps": 187,
    "save_steps": 250,
}


def _paper(base: str, dropout: float, lr: float) -> dict[str, Any]:
    return {**_PAPER, "base": base, "lora_dropout": dropout, "learning_rate": lr}


PRESETS: dict[str, dict[str, Any]] = {
    "guanaco-7b": _paper("huggyllama/llama-7b", 0.1, 2e-4),
    "guanaco-13b": _paper("huggyllama/llama-13b", 0.05, 2e-4),
    "guanaco-33b": _paper("huggyllama/llama-30b", 0.05, 1e-4),
    "guanaco-65b": _paper("huggyllama/llama-65b", 0.05, 1e-4),
    "smoke": {
        "base": "smollm2",
        "data": "sample",
        "compute_dtype": "float32",
        "max_seq_len": 128,
        "lora_r": 8,
        "lora_alpha": 16.0,
        "lora_dropout": 0.05,
        "learning_rate": 1e-3,
        "batch_size": 2,
        "grad_accum": 2,
        "max_steps": 6,
        "eval_steps": 3,
        "save_steps": 3,
        "logging_steps": 1,
        "gradient_checkpointing": False,
        "optim": "adamw_32bit",
        "out": "runs/smoke",
    },
}
