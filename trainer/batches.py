"""Batches: a deterministic order per (seed, epoch), length grouping, and padding to the batch.

The order depends only on the seed and the epoch, so a resumed run finds its place by arithmetic
(micro-batch number = step x accumulation) instead of replaying a sampler. Length grouping sorts
examples of similar length into the same batch (inside shuffled windows of 50 batches, as
transformers does), which cuts the padding a batch carries; every example keeps its own
sequence, so nothing leaks between examples as it could when packing.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from trainer.data import IGNORE, Example

MEGABATCH = 50


def epoch_batches(
    lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool
) -> list[list[int]]:
    """Index batches for one epoch; the longest batch comes first, so running out of memory shows
    up on the first step rather than hours in."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    window = batch_size * MEGABATCH
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
    batches[0], batches[longest] = batches[longest], batches[0]
    return batches


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example of the batch; padding is masked out of attention and loss."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def target_count(batch: dict[str, Any]) -> int:
    """Tokens that carry a loss once labels are shifted by one (as the model computes it)."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())
