"""Merge a trained adapter into its base and write a normal checkpoint.

The adapter learned to correct the *4-bit* base, so it is merged onto that base dequantized
(NF4 codes x absmax, back to floating point), not onto the original 16-bit weights: merging onto
the originals would shift every output by the quantization error the adapter never saw.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from foundations.errors import UserError
from trainer import model as qmodel
from trainer.config import CONFIG_FILE, build

log = logging.getLogger(__name__)


class MergeError(UserError, RuntimeError):
    pass


def dequantized_base(run: Path) -> tuple[Any, Any]:
    """The run's base loaded exactly as in training (same 4-bit settings), then dequantized; and its config."""
    from transformers import AutoModelForCausalLM

    config_file = Path(run) / CONFIG_FILE
    if not config_file.is_file() or not (Path(run) / "adapter_config.json").is_file():
        raise MergeError(
            f"{run}: not a finished run (needs {CONFIG_FILE} and adapter_config.json from guanaco train)"
        )
    cfg = build(config_file=config_file)
    base = AutoModelForCausalLM.from_pretrained(
        qmodel.resolve_base(cfg.base),
        quantization_config=qmodel.quantization_config(cfg),
        dtype=qmodel.compute_dtype(cfg),
        device_map={"": 0} if qmodel.on_gpu() else None,
    )
    return base.dequantize(), cfg


def merged_model(run: Path) -> Any:
    """Dequantized 4-bit base + the run's adapter, merged into plain linear layers."""
    from peft import PeftModel

    base, _ = dequantized_base(run)
    return PeftModel.from_pretrained(base, str(run)).merge_and_unload()


def merge(run: Path, out: Path, dtype: str | None = None) -> Path:
    """Write the merged model and the run's tokenizer to `out` as an ordinary checkpoint."""
    from transformers import AutoTokenizer

    model = merged_model(run)
    if dtype:
        model = model.to(getattr(torch, dtype))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(run).save_pretrained(out)
    log.info("merged %s onto its dequantized base into %s", run, out)
    return out
