"""The training loss without the full logits: only the positions that carry a target are projected
through the LM head, a few hundred at a time, and each chunk's gradient is taken on the spot.

A causal LM's usual loss holds the (batch x length x vocabulary) logits, their log-softmax and
their gradient at once: on a small model with a large vocabulary (SmolLM2: 49k) that is most of a
step's memory, and the padding and untrained positions are projected for nothing. Here the
backbone's last hidden states at the target positions go through the head in chunks of at most
:data:`CHUNK_ELEMENTS` logits; each chunk yields its summed cross-entropy and, in the same pass,
the gradient with respect to its hidden states (softmax minus one-hot, times the head), so the
backward pass only scales what was kept: two products with the head per token, as with full
logits, against three for a head that recomputes its chunks in the backward pass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from trainer.encode import IGNORE

CHUNK_ELEMENTS = 1 << 24
"""Logits held at once (64 MiB in float32): the chunk's rows are this divided by the vocabulary."""


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of `hidden @ weight.T (+ bias)` against `targets`, chunk by chunk."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        want_hidden, want_weight, want_bias = ctx.needs_input_grad[:3]
        rows = max(1, CHUNK_ELEMENTS // weight.size(0))
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if want_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if want_bias else None
        for start in range(0, hidden.size(0), rows):
            h, t = hidden[start : start + rows], targets[start : start + rows]
            logits = F.linear(h, weight, bias).float()
            log_z = torch.logsumexp(logits, dim=-1)
            total += (log_z - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if not (want_hidden or want_weight or want_bias):
                continue
            grad = logits.sub_(log_z[:, None]).exp_()  # softmax, in place of the logits
            grad[torch.arange(t.numel(), device=t.device), t] -= 1
            if grad_hidden is not None:
                grad_hidden[start : start + rows] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += grad.t() @ h.float()
            if grad_bias is not None:
                grad_bias += grad.sum(0)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        scale = grad_total.float()
        return (
            None if grad_hidden is None else grad_hidden * scale.to(grad_hidden.dtype),
            None if grad_weight is None else (grad_weight * scale).to(ctx.dtypes[0]),
            None if grad_bias is None else (grad_bias * scale).to(ctx.dtypes[1]),
            None,
        )


def chunked_cross_entropy(hidden: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy of `hidden` ([N, H], one row per target) through `head`."""
    return _ChunkedCrossEntropy.apply(hidden, head.weight, head.bias, targets)


def shifted_targets(labels: torch.Tensor) -> torch.Tensor:
    """The label each position predicts (the next one); the last position predicts nothing."""
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE)


def add_token_loss(model: Any) -> None:
    """Give a causal LM a `loss_labels=` forward: the summed loss over those labels' targets.

    Called on the base model before it is wrapped (peft, DDP, FSDP), so the loss is computed inside
    the wrappers' own forward, as every other output is. A head that is not a plain linear layer
    (adapted by LoRA, quantized) or logits that the model scales or caps take the model's full
    logits instead, so the loss is the same either way."""
    original = model.forward
    config = model.config.get_text_config()
    plain_head = type(model.get_output_embeddings()) is torch.nn.Linear and not any(
        getattr(config, name, None) for name in ("final_logit_softcapping", "logit_scale", "logits_scaling")
    )

    def forward(*args: Any, loss_labels: torch.Tensor | None = None, **kwargs: Any) -> Any:
        if loss_labels is None:
            return original(*args, **kwargs)
        targets = shifted_targets(loss_labels)
        # no cache: it is of no use to a loss, and with one transformers ignores packed positions
        kwargs = {**{k: v for k, v in kwargs.items() if v is not None}, "use_cache": False}
        head = model.get_output_embeddings()
        if not (plain_head and type(head) is torch.nn.Linear):
            logits = original(*args, **kwargs).logits
            return F.cross_entropy(
                logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum"
            )
        hidden = getattr(model, model.base_model_prefix)(*args, **kwargs).last_hidden_state
        keep = targets != IGNORE
        return chunked_cross_entropy(hidden[keep], head, targets[keep])

    model.forward = forward
