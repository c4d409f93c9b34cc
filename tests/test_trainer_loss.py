"""The chunked loss equals the full-logits cross-entropy, in value and in gradients, chunk or no chunk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.trainer_tiny import tiny_checkpoint
from trainer import loss as chunked
from trainer.encode import IGNORE


@pytest.mark.parametrize("chunk_rows", [1, 3, 1000])
def test_chunked_cross_entropy_matches_full_logits_and_their_gradients(
    chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50)
    monkeypatch.setattr(chunked, "CHUNK_ELEMENTS", chunk_rows * head.out_features)
    hidden = torch.randn(7, 16, requires_grad=True)
    targets = torch.randint(0, 50, (7,))
    ours = chunked.chunked_cross_entropy(hidden, head, targets)
    (ours * 0.5).backward()
    mine = [hidden.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone()]
    hidden.grad = head.weight.grad = head.bias.grad = None
    reference = F.cross_entropy(head(hidden), targets, reduction="sum")
    (reference * 0.5).backward()
    torch.testing.assert_close(ours, reference)
    for got, want in zip(mine, [hidden.grad, head.weight.grad, head.bias.grad], strict=True):
        torch.testing.assert_close(got, want)


def test_token_loss_through_the_model_equals_the_full_logits_loss(tmp_path: Path) -> None:
    """Only the positions with a target are projected; padding and untrained positions count for nothing."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint(tmp_path))
    chunked.add_token_loss(model)
    ids = torch.randint(4, 200, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    labels = ids.clone()
    labels[1, 6:] = IGNORE
    labels[0, :3] = IGNORE  # a prompt left out of the loss
    loss = model(input_ids=ids, attention_mask=mask, loss_labels=labels)
    logits = model(input_ids=ids, attention_mask=mask).logits
    reference = F.cross_entropy(
        logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE, reduction="sum"
    )
    torch.testing.assert_close(loss, reference)
