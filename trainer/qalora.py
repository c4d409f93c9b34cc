"""QA-LoRA (Xu et al., 2023): a LoRA that trains on a group-wise INT4/INT3/INT2 base and folds into it.

Every targeted linear layer's weight W (out x in) is cut, along its input channels, into groups of
`group_size` and quantized asymmetrically per (output row, group): integer codes q in [0, 2^bits - 1],
a scale s and a zero point z, with W ~ s * (q - z) (min-max round-to-nearest, the range widened to
hold 0 as GPTQ does, so the initial zero point is an integer).

The adapter sees the input *summed* over each group: A is (in / group_size) x r, B is r x out, and
the layer computes  x W~^T + scaling * B A pool(x),  pool(x)_l = sum of x over the channels of group l.
This is the paper's Algorithm 1 (`AvgPool1d(group_size)(x) * group_size`, i.e. a sum), not PEFT's
`use_qalora` (mean times the *number* of groups), which scales the update by in / group_size^2 instead.
With a sum, the adapter adds the same value  scaling * (B A)[j, l]  to every weight of group l in
output row j, which is exactly a shift of that group's zero point:

    s * (q - z) + scaling * (BA)  =  s * (q - (z - scaling * (BA) / s))

so merging changes the zero points only; codes and scales stay as trained (:func:`GroupQuantLinear.fold`).
Scales are rounded to float16 when quantizing, so the saved model (float16 scales, float32 zero points)
holds exactly the scales the adapter was trained against and the zero points the fold computed.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import DEFAULT_GROUP_SIZE, TrainConfig
from trainer.errors import TrainError

log = logging.getLogger(__name__)

ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG = "qalora_adapter.json"
SCALE_BITS, ZERO_BITS = 16, 32
"""On disk a group costs a float16 scale (exact: scales are rounded to float16 when quantizing) and a
float32 zero point (fractional after a merge; float16 would move the merged logits measurably)."""


class QALoraError(TrainError):
    """A layer or setting QA-LoRA cannot use; the message names the layer and the fix."""


@dataclass(frozen=True)
class GroupQuant:
    """Integer codes (uint8, one per weight), and per (row, group) scales and zero points."""

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor


def quantize(weight: torch.Tensor, bits: int, group_size: int) -> GroupQuant:
    """Asymmetric round-to-nearest of each group of `group_size` input channels to `bits`-bit codes."""
    out_features, in_features = weight.shape
    if in_features % group_size:
        raise QALoraError(f"{in_features} input channels do not split into groups of {group_size}")
    groups = weight.detach().float().reshape(out_features, in_features // group_size, group_size)
    top = 2**bits - 1
    low = groups.amin(-1).clamp(max=0)
    high = groups.amax(-1).clamp(min=0)
    scales = ((high - low) / top).half().float()
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    zeros = torch.round(-low / scales).clamp(0, top)
    codes = torch.round(groups / scales[..., None] + zeros[..., None]).clamp(0, top)
    return GroupQuant(codes.reshape(out_features, in_features).to(torch.uint8), scales, zeros)


def dequantize(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    """s * (q - z), group by group, as a float tensor of the codes' shape."""
    out_features, in_features = codes.shape
    groups = codes.to(scales.dtype).reshape(out_features, scales.shape[1], -1)
    return ((groups - zeros[..., None]) * scales[..., None]).reshape(out_features, in_features)


class GroupQuantLinear(nn.Module):
    """A frozen linear layer held as group-wise integer codes, dequantized at each forward.

    There is no low-bit matmul kernel on the CPU, so the weight is rebuilt in the input's dtype
    for each call (the memory saving is in what is held, not in the arithmetic)."""

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                 bias: torch.Tensor | None, bits: int) -> None:  # fmt: skip
        super().__init__()
        self.bits = bits
        self.out_features, self.in_features = codes.shape
        self.group_size = self.in_features // scales.shape[1]
        self.register_buffer("codes", codes)
        self.register_buffer("scales", scales)
        self.register_buffer("zeros", zeros)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int, group_size: int) -> GroupQuantLinear:
        q = quantize(linear.weight, bits, group_size)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(q.codes.to(linear.weight.device), q.scales.to(linear.weight.device),
                   q.zeros.to(linear.weight.device), bias, bits)  # fmt: skip

    def weight_dequantized(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        weight = dequantize(self.codes, self.scales, self.zeros)
        return weight if dtype is None else weight.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight_dequantized(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, int{self.bits}, group={self.group_size}"


def pool(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """The input summed over each group of `group_size` consecutive channels (the paper's pooling)."""
    return x.unflatten(-1, (x.shape[-1] // group_size, group_size)).sum(-1)


class QALoraLinear(nn.Module):
    """A group-quantized base layer plus a LoRA whose A reads the group-summed input."""

    def __init__(self, base: GroupQuantLinear, r: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        groups = base.in_features // base.group_size
        self.lora_A = nn.Linear(groups, r, bias=False, device=base.codes.device)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=base.codes.device)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # as peft: A random, B zero
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = pool(self.dropout(x), self.base.group_size).to(self.lora_A.weight.dtype)
        update = self.lora_B(self.lora_A(pooled)) * self.scaling
        return self.base(x) + update.to(x.dtype)

    def zero_shift(self) -> torch.Tensor:
        """How much each (row, group) zero point moves when the adapter is folded in: scaling * BA / s."""
        delta = self.lora_B.weight.float() @ self.lora_A.weight.float()
        return self.scaling * delta / self.base.scales

    def fold(self) -> GroupQuantLinear:
        """The base layer with the adapter folded into its zero points (codes and scales untouched)."""
        base = self.base
        zeros = base.zeros - self.zero_shift().to(base.zeros.dtype)
        return GroupQuantLinear(base.codes, base.scales, zeros, base.bias, base.bits)


# ------------------------------------------------------------ which layers


def target_names(model: nn.Module, targets: list[str] | None) -> list[str]:
    """Linear layers to quantize and adapt: the named ones (by last name component), or every linear
    layer but the output head (as peft's `all-linear`)."""
    head = model.get_output_embeddings()
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or module is head:
            continue
        if targets is None or name.rsplit(".", 1)[-1] in targets:
            names.append(name)
    if not names:
        raise QALoraError(f"no linear layer matches target_modules {targets}")
    return names


def replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def quantize_model(
    model: nn.Module, bits: int, group_size: int, targets: list[str] | None = None
) -> list[str]:
    """Replace the target linear layers of `model` by group-quantized ones; returns their names.

    A layer whose input width does not split into groups is an error naming it (QA-LoRA's fold
    needs every channel in a group)."""
    names = target_names(model, targets)
    for name in names:
        linear = model.get_submodule(name)
        if linear.in_features % group_size:
            raise QALoraError(
                f"layer {name}: {linear.in_features} input channels do not split into groups of {group_size}; "
                f"choose a --group-size that divides it"
            )
        replace(model, name, GroupQuantLinear.from_linear(linear, bits, group_size))
    return names


def quantized_layers(model: nn.Module) -> dict[str, GroupQuantLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, GroupQuantLinear)}


def adapted_layers(model: nn.Module) -> dict[str, QALoraLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QALoraLinear)}


# ------------------------------------------------------------ the trainer's interface (as trainer.model)


def group_size(cfg: TrainConfig) -> int:
    return cfg.group_size or DEFAULT_GROUP_SIZE


def load_base(cfg: TrainConfig, device_map: Any = None) -> nn.Module:
    """The base model with its target layers quantized group-wise to `cfg.bits`, everything frozen."""
    from transformers import AutoModelForCausalLM

    from trainer import model as qmodel

    if qmodel.under_fsdp():
        raise QALoraError("--method qalora does not run under FSDP yet: train it on one device (or DDP)")
    model = AutoModelForCausalLM.from_pretrained(
        qmodel.resolve_base(cfg.base), dtype=qmodel.compute_dtype(cfg), device_map=device_map
    )
    model.config.use_cache = False
    quantize_model(model, cfg.bits, group_size(cfg), cfg.target_modules)
    model.requires_grad_(False)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


class QALoraModel(nn.Module):
    """The causal LM with QA-LoRA layers; saves only the adapter, as a PeftModel does."""

    def __init__(self, model: nn.Module, settings: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.settings = settings

    def forward(self, **inputs: Any) -> Any:
        return self.model(**inputs)

    def adapter_state(self, state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The LoRA weights by layer name (`<layer>.lora_A.weight`), from the model or a given full state."""
        state = state_dict if state_dict is not None else self.state_dict()
        return {k.removeprefix("model."): v.detach().contiguous() for k, v in state.items() if ".lora_" in k}

    def save_pretrained(self, folder: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.adapter_state(state_dict), folder / ADAPTER_FILE)
        (folder / ADAPTER_CONFIG).write_text(json.dumps(self.settings, indent=2))

    def get_memory_footprint(self) -> int:
        return self.model.get_memory_footprint()


def add_lora(model: nn.Module, cfg: TrainConfig, adapter: Path | None = None) -> QALoraModel:
    """Wrap every quantized layer with a QA-LoRA adapter: fresh, or (trainable) from a saved one."""
    for name, layer in quantized_layers(model).items():
        replace(model, name, QALoraLinear(layer, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
    settings = {"method": "qalora", "base": cfg.base, "bits": cfg.bits, "group_size": group_size(cfg),
                "r": cfg.lora_r, "alpha": cfg.lora_alpha, "pooling": "sum",
                "layers": sorted(adapted_layers(model))}  # fmt: skip
    wrapped = QALoraModel(model, settings)
    if adapter is not None:
        load_adapter(wrapped, Path(adapter))
    for name, param in wrapped.named_parameters():
        param.requires_grad_(".lora_" in name)
    return wrapped


def load_adapter(wrapped: QALoraModel, folder: Path) -> None:
    """Load saved LoRA weights; a file that does not fit the model is an error naming the folder."""
    from safetensors.torch import load_file

    path = folder / ADAPTER_FILE
    if not path.is_file() or not (folder / ADAPTER_CONFIG).is_file():
        raise QALoraError(f"{folder}: no QA-LoRA adapter ({ADAPTER_FILE} and {ADAPTER_CONFIG})")
    try:
        saved = json.loads((folder / ADAPTER_CONFIG).read_text())
    except json.JSONDecodeError as err:
        raise QALoraError(
            f"{folder / ADAPTER_CONFIG}, line {err.lineno}: not valid JSON ({err.msg})"
        ) from err
    for key in ("bits", "group_size", "r"):
        if saved.get(key) != wrapped.settings[key]:
            raise QALoraError(
                f"{folder / ADAPTER_CONFIG}: field {key} is {saved.get(key)!r}, the run has {wrapped.settings[key]!r}"
            )
    weights = {f"model.{k}": v for k, v in load_file(path).items()}
    expected = {k for k in wrapped.state_dict() if ".lora_" in k}
    if set(weights) != expected:
        raise QALoraError(
            f"{path}: its layers do not match the model's ({len(weights)} vs {len(expected)} tensors)"
        )
    wrapped.load_state_dict(weights, strict=False)


def storage_bits_per_weight(bits: int, group_size: int) -> float:
    """On disk: the packed code plus a float16 scale and a float32 zero point per group."""
    return bits + (SCALE_BITS + ZERO_BITS) / group_size


def footprint(model: QALoraModel, cfg: TrainConfig) -> dict[str, float]:
    """Memory, bits per weight (packed on disk; and as held in memory: one byte per code plus float
    scales and zeros), layers and trainable parameters, with the keys trainer.model uses."""
    layers = [m.base for m in adapted_layers(model).values()]
    held = sum(m.codes.numel() * 8 + (m.scales.numel() + m.zeros.numel()) * m.scales.element_size() * 8
               for m in layers)  # fmt: skip
    weights = sum(m.codes.numel() for m in layers)
    return {
        "memory_mb": model.get_memory_footprint() / 2**20,
        "bits_per_weight": storage_bits_per_weight(cfg.bits, group_size(cfg)),
        "bits_per_weight_measured": held / weights if weights else float("nan"),
        "quantized_layers": len(layers),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def describe(info: dict[str, float], cfg: TrainConfig) -> str:
    return (
        f"model: {info['memory_mb']:.1f} MiB in memory; {info['quantized_layers']} layers in INT{cfg.bits} "
        f"(group {group_size(cfg)}, asymmetric) at {info['bits_per_weight']:.3f} bits/weight on disk "
        f"({info['bits_per_weight_measured']:.3f} as held in memory); "
        f"{info['trainable_params']:,} trainable QA-LoRA parameters"
    )
