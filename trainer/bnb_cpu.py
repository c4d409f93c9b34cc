"""bitsandbytes' two CPU paths for 4-bit layers, and choosing between them once, up front.

bitsandbytes (0.50) runs a `Linear4bit` on the CPU in one of two ways:

- **unpacked** (every CPU): the stored 4-bit codes and their (double-quantized) absmax are
  dequantized to the compute dtype at each call, then multiplied in that dtype (float32 here).
- **packed** (CPUs with AVX512-BF16 only): the first forward in eval mode without gradients
  rewrites the layer's weight *in place* into a kernel layout: absmax is dequantized and kept as
  bfloat16, double quantization is undone, and the product is computed in bfloat16. The rewrite
  needs the output size to be a multiple of 32 and the input size a multiple of the quantization
  block, and crashes on other shapes. Saving the layer packs it back with a fresh (lossy)
  re-quantization of absmax.

Left to bitsandbytes, which path a layer takes depends on the CPU *and on the history of calls*
(a layer is unpacked until its first eval-mode no-grad call, packed after it). The helpers here
make the choice once, when a model is loaded: :func:`keep_unpacked` for training (the frozen base
must never change), :func:`settle_for_inference` for generation (packed where the CPU and the
shape allow, unpacked elsewhere, the same for every later call).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

PACK_ROWS = 32  # output rows per tile of the packed layout (`block_n` in bitsandbytes)


def four_bit_layers(model: Any) -> list[Any]:
    import bitsandbytes as bnb

    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def would_pack(layer: Any) -> bool:
    """Whether bitsandbytes would repack this layer on its next eval-mode no-grad CPU call: it
    decided when the layer was built, from the CPU's instruction set."""
    return bool(getattr(layer, "support_avx512bf16_for_cpu", False)) and not is_packed(layer)


def is_packed(layer: Any) -> bool:
    return bool(getattr(layer.weight.quant_state, "packing_format_for_cpu", False))


def packed_layout_fits(layer: Any) -> bool:
    """The shapes bitsandbytes' packed layout takes: rows in whole tiles, columns in whole blocks."""
    state = layer.weight.quant_state
    rows, cols = state.shape
    return rows % PACK_ROWS == 0 and cols % state.blocksize == 0


def keep_unpacked(model: Any) -> int:
    """Turn bitsandbytes' in-place repacking off on every 4-bit layer; returns how many.

    For training: an evaluation pass would otherwise rewrite the frozen base (bfloat16 absmax,
    double quantization undone) on AVX512-BF16 CPUs only, so the loss after it, a resumed run and
    the measured bits per weight would depend on the CPU and on when evaluation ran."""
    layers = four_bit_layers(model)
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def settle_for_inference(model: Any) -> dict[str, int]:
    """Fix each 4-bit CPU layer's path now, for every later call: packed where bitsandbytes would
    pack and the shape fits (packing it at once, with one dummy eval-mode no-grad call), unpacked
    elsewhere. Returns :func:`paths`."""
    for layer in four_bit_layers(model):
        if layer.weight.device.type != "cpu" or not would_pack(layer):
            continue
        if packed_layout_fits(layer):
            _pack_now(layer)
        else:
            layer.support_avx512bf16_for_cpu = False  # bitsandbytes would crash on this shape
    return paths(model)


def paths(model: Any) -> dict[str, int]:
    """How many 4-bit layers take each path (`packed`, `unpacked`; GPU layers under their device)."""
    counts: Counter[str] = Counter()
    for layer in four_bit_layers(model):
        device = layer.weight.device.type
        counts[device if device != "cpu" else "packed" if is_packed(layer) else "unpacked"] += 1
    return dict(counts)


def _pack_now(layer: Any) -> None:
    training = layer.training
    layer.eval()
    dtype = layer.compute_dtype or torch.float32
    with torch.no_grad():
        layer(torch.zeros(1, layer.in_features, dtype=dtype))
    layer.train(training)
