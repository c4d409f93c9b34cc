"""The project's low-bit checkpoint: group-wise integer codes, scales and zero points, and its loader.

A folder holds the model's Hugging Face `config.json` and tokenizer, `quantization.json` (format,
bits, group size, the quantized layers and their shapes) and one `model.safetensors` with, for each
quantized layer `L`: `L.qweight` (the codes bit-packed, `bits` bits each, row-major, least significant
bit first), `L.scales` (float16) and `L.zeros` (float32), one per output row and input group (the
weight is `scales * (code - zeros)`), `L.bias` if any; and every other tensor (embeddings, norms,
head) as is, or cast to `--dtype`.

Neither transformers nor vLLM reads this folder as a quantized model: their group-wise integer
formats (GPTQ, AWQ) store integer zero points, and a QA-LoRA merge makes them fractional. It loads
with :func:`load_quantized` (what `guanaco models add --qalora` contestants use); for another engine,
:func:`load_quantized` with `dequantize=True` gives a plain model that `save_pretrained` writes as an
ordinary 16/32-bit checkpoint, at ordinary size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.qalora import GroupQuantLinear, quantized_layers, replace

FORMAT = "guanaco-group-int"
VERSION = 1
QUANT_FILE = "quantization.json"
WEIGHTS_FILE = "model.safetensors"


class FormatError(ValueError):
    """A folder that is not a readable low-bit checkpoint; the message names the file and field."""


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """`bits`-bit codes (uint8) into bytes, least significant bit first, padded to a whole byte."""
    flat = codes.reshape(-1).to(torch.uint8)
    shifts = torch.arange(bits, dtype=torch.uint8)
    stream = ((flat[:, None] >> shifts) & 1).reshape(-1)
    stream = torch.cat([stream, stream.new_zeros(-stream.numel() % 8)])
    return (stream.reshape(-1, 8).to(torch.int32) << torch.arange(8)).sum(1).to(torch.uint8)


def unpack(packed: torch.Tensor, bits: int, shape: tuple[int, int]) -> torch.Tensor:
    count = shape[0] * shape[1]
    stream = ((packed.to(torch.uint8)[:, None] >> torch.arange(8, dtype=torch.uint8)) & 1).reshape(-1)
    if stream.numel() < count * bits:
        raise FormatError(f"packed codes hold {stream.numel() // bits} weights, the layer needs {count}")
    groups = stream[: count * bits].reshape(count, bits).to(torch.int32)
    return (groups << torch.arange(bits)).sum(1).to(torch.uint8).reshape(shape)


def save_quantized(
    model: nn.Module, tokenizer: Any, out: Path, source: str, dtype: str | None = None
) -> Path:
    """Write `model` (its GroupQuantLinear layers packed) with its config and tokenizer into `out`."""
    from safetensors.torch import save_file

    layers = quantized_layers(model)
    if not layers:
        raise FormatError("the model has no group-quantized layer to save")
    first = next(iter(layers.values()))
    cast = getattr(torch, dtype) if dtype else None
    tensors: dict[str, torch.Tensor] = {}
    for name, layer in layers.items():
        tensors[f"{name}.qweight"] = pack(layer.codes.cpu(), layer.bits)
        tensors[f"{name}.scales"] = layer.scales.half().cpu()
        tensors[f"{name}.zeros"] = layer.zeros.float().cpu()
        if layer.bias is not None:
            tensors[f"{name}.bias"] = layer.bias.cpu()
    seen: set[int] = set()
    for key, value in model.state_dict().items():
        if key.rpartition(".")[0] in layers or value.data_ptr() in seen:  # quantized, or a tied copy
            continue
        seen.add(value.data_ptr())
        tensors[key] = (value.to(cast) if cast and value.is_floating_point() else value).contiguous().cpu()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out / WEIGHTS_FILE)
    model.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = {"format": FORMAT, "version": VERSION, "bits": first.bits, "group_size": first.group_size,
            "scheme": "asymmetric: weight = scales * (code - zeros)", "source": source,
            "layers": {name: [layer.out_features, layer.in_features] for name, layer in layers.items()}}  # fmt: skip
    (out / QUANT_FILE).write_text(json.dumps(meta, indent=2))
    return out


def read_meta(folder: Path) -> dict[str, Any]:
    """`quantization.json` of a low-bit checkpoint, checked field by field."""
    path = Path(folder) / QUANT_FILE
    if not path.is_file():
        raise FormatError(f"{path} not found: give a folder written by `guanaco merge` for QA-LoRA or --bits")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FormatError(f"{path}: field format is not {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise FormatError(f"{path}: field version {meta.get('version')!r} is not {VERSION}")
    if meta.get("bits") not in (2, 3, 4, 8) or not isinstance(meta.get("group_size"), int):
        raise FormatError(f"{path}: fields bits and group_size must be 2/3/4/8 and an integer")
    if not isinstance(meta.get("layers"), dict) or not meta["layers"]:
        raise FormatError(f"{path}: field layers must map layer names to [out, in]")
    return meta


def label(meta: dict[str, Any]) -> str:
    """How a contestant's quantization is recorded, e.g. `int3-g32`."""
    return f"int{meta['bits']}-g{meta['group_size']}"


def load_quantized(folder: Path, dtype: torch.dtype = torch.float32, dequantize: bool = False) -> nn.Module:
    """The low-bit model in `folder`, in eval mode: layers held as codes (dequantized at each forward),
    or with `dequantize` rebuilt once into plain float linear layers (faster on a CPU, no smaller)."""
    from accelerate import init_empty_weights
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    meta = read_meta(folder)
    tensors = load_file(folder / WEIGHTS_FILE)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=dtype)
    for name, (rows, cols) in meta["layers"].items():
        try:
            codes = unpack(tensors.pop(f"{name}.qweight"), meta["bits"], (rows, cols))
            scales, zeros = tensors.pop(f"{name}.scales").to(dtype), tensors.pop(f"{name}.zeros").to(dtype)
        except KeyError as err:
            raise FormatError(f"{folder / WEIGHTS_FILE}: layer {name} lacks tensor {err}") from err
        bias = tensors.pop(f"{name}.bias", None)
        layer = GroupQuantLinear(codes, scales, zeros, None if bias is None else bias.to(dtype), meta["bits"])
        replace(model, name, _plain(layer) if dequantize else layer)
    rest = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(rest, strict=False, assign=True)
    if unexpected:
        raise FormatError(f"{folder / WEIGHTS_FILE}: tensors the model does not have: {unexpected[:5]}")
    model.tie_weights()
    empty = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if empty:
        raise FormatError(f"{folder / WEIGHTS_FILE}: no weights for {empty[:5]} (missing {missing[:5]})")
    return model.eval()


def _plain(layer: GroupQuantLinear) -> nn.Linear:
    linear = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
    linear.weight = nn.Parameter(layer.weight_dequantized(), requires_grad=False)
    if layer.bias is not None:
        linear.bias = nn.Parameter(layer.bias, requires_grad=False)
    return linear


def size_on_disk(folder: Path) -> int:
    """Bytes of the weight files in a checkpoint folder (what a deployment ships)."""
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
