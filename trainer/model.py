"""The 4-bit base model and its LoRA adapter: loading, k-bit preparation, and what it costs in memory.

Bits per quantized weight follow from the block layout: 4 bits per weight, plus one absmax per
block of 64 weights, stored as float32 (32/64 = 0.5 bits) or, with double quantization, as an
8-bit code (8/64) whose own float32 absmax is shared by 256 blocks (32/(64*256)): 4.127 bits.
:func:`measured_bits_per_weight` reads the same figure off a real `Linear4bit` layer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from foundations.errors import loading_model
from trainer.bnb_cpu import keep_unpacked
from trainer.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)

BLOCKSIZE = 64
NESTED_BLOCKSIZE = 256


def resolve_base(base: str) -> str:
    """`smollm2` is the embedded model (converted once into the cache); anything else is as given."""
    if base == "smollm2":
        from foundations.smollm2 import ensure_smollm2

        return str(ensure_smollm2())
    return base


def on_gpu() -> bool:
    return torch.cuda.is_available()


def compute_dtype(cfg: TrainConfig) -> torch.dtype:
    """bfloat16 on a GPU that has it, float32 on the CPU: bf16 stays off there whatever was asked,
    as the CPU's 4-bit kernels and autocast want float32 (TRL turns bf16 on by default)."""
    if not on_gpu():
        if cfg.compute_dtype not in ("auto", "float32"):
            log.warning("no GPU: compute dtype %s replaced by float32", cfg.compute_dtype)
        return torch.float32
    if cfg.compute_dtype != "auto":
        return getattr(torch, cfg.compute_dtype)
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def under_fsdp() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")


def quantization_config(cfg: TrainConfig) -> Any:
    """The bitsandbytes 4-bit config (or int8 with `bits: 8`). Under FSDP the packed weights are
    stored in the compute dtype, so FSDP can flatten them together with the (unquantized) norms and
    embeddings; int8 weights cannot be stored that way, so 8-bit runs one process per model."""
    from transformers import BitsAndBytesConfig

    dtype = compute_dtype(cfg)
    if cfg.bits == 8:
        if under_fsdp():
            raise ConfigError("bits 8 (int8 LoRA) does not shard under FSDP: use bits 4, or DDP")
        # on the CPU, eval-mode int8 matmuls cast float32 inputs to float16 and say so on every call
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        return BitsAndBytesConfig(load_in_8bit=True)
    if cfg.quant_storage == "auto":
        storage = dtype if under_fsdp() else torch.uint8
    else:
        storage = getattr(torch, cfg.quant_storage)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.quant_type,
        bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_quant_storage=storage,
    )


def bits_per_weight(
    double_quant: bool, blocksize: int = BLOCKSIZE, nested_blocksize: int = NESTED_BLOCKSIZE
) -> float:
    """Storage per quantized weight from the layout: 4.127 (NF4/FP4 + double quant) or 4.5."""
    if double_quant:
        return 4 + 8 / blocksize + 32 / (blocksize * nested_blocksize)
    return 4 + 32 / blocksize


def measured_bits_per_weight(layer: Any) -> float:
    """Bits per weight actually held by a bitsandbytes `Linear4bit`: packed weights plus the
    per-block absmax (and, when nested, the second-level absmax). The 256-entry code books are
    per-layer constants, not per-weight storage, and are left out as the paper does. For an int8
    `Linear8bitLt`: 8 bits plus one float32 scale per output row."""
    weight = layer.weight
    if weight.dtype == torch.int8:
        return (weight.numel() * 8 + weight.SCB.numel() * weight.SCB.element_size() * 8) / weight.numel()
    state = weight.quant_state
    total = (
        weight.numel() * weight.element_size() * 8 + state.absmax.numel() * state.absmax.element_size() * 8
    )
    if state.nested:
        total += state.state2.absmax.numel() * state.state2.absmax.element_size() * 8
    return total / state.shape.numel()


def load_base(cfg: TrainConfig, device_map: Any = None) -> Any:
    """The base model in 4 bits, ready for k-bit training."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    dtype = compute_dtype(cfg)
    with loading_model(cfg.base):
        model = AutoModelForCausalLM.from_pretrained(
            resolve_base(cfg.base),
            quantization_config=quantization_config(cfg),
            dtype=dtype,
            device_map=device_map,
            low_cpu_mem_usage=True,
        )
    model.config.use_cache = False
    # The frozen base must stay as loaded: on AVX512-BF16 CPUs bitsandbytes would otherwise repack
    # it in place (lossily) at the first evaluation pass, so training, eval and resume would differ
    # by CPU and by when evaluation ran. See trainer.bnb_cpu.
    keep_unpacked(model)
    if under_fsdp():  # as TRL: k-bit preparation would upcast some weights and break FSDP's flat shards
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return model
    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


def lora_config(cfg: TrainConfig) -> Any:
    """LoRA on every linear layer but the output head (peft's `all-linear`), or on the named ones."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules or "all-linear",
        bias="none",
        task_type="CAUSAL_LM",
    )


def add_lora(model: Any, cfg: TrainConfig, adapter: Path | None = None) -> Any:
    """Wrap the base with a fresh adapter, or with a saved one (trainable) when `adapter` is given."""
    from peft import PeftModel, get_peft_model

    if adapter is not None:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    return get_peft_model(model, lora_config(cfg))


def footprint(model: Any, cfg: TrainConfig) -> dict[str, float]:
    """Memory of the model and bits per quantized weight, from the config and as measured."""
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit | bnb.nn.Linear8bitLt)]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "memory_mb": model.get_memory_footprint() / 2**20,
        "bits_per_weight": bits_per_weight(cfg.double_quant) if cfg.bits == 4 else 8.0,
        "bits_per_weight_measured": measured_bits_per_weight(layers[0]) if layers else float("nan"),
        "quantized_layers": len(layers),
        "trainable_params": trainable,
    }


def describe(info: dict[str, float], cfg: TrainConfig) -> str:
    quant = f"4-bit {cfg.quant_type.upper()}{' + double quant' if cfg.double_quant else ''}"
    quant = quant if cfg.bits == 4 else "8-bit int8 (LLM.int8)"
    return (
        f"model: {info['memory_mb']:.1f} MiB in memory; {info['quantized_layers']} layers in {quant} at "
        f"{info['bits_per_weight']:.3f} bits/weight (measured {info['bits_per_weight_measured']:.3f}); "
        f"{info['trainable_params']:,} trainable LoRA parameters"
    )


def prepare_for_fsdp(model: Any, accelerator: Any) -> None:
    """FSDP flattens each wrapped block into one tensor of one dtype: the LoRA weights join the
    compute dtype (the 4-bit weights are already stored in it), and blocks are wrapped where peft
    says (the decoder layers and the LoRA layers), as TRL does for sharded QLoRA."""
    from peft.utils.other import fsdp_auto_wrap_policy

    dtype = next(p.dtype for p in model.parameters() if not p.requires_grad and p.is_floating_point())
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.to(dtype)
    accelerator.state.fsdp_plugin.auto_wrap_policy = fsdp_auto_wrap_policy(model)
