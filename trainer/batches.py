"""Batches: a deterministic order per (seed, epoch), length grouping or packing, and collation.

The order depends only on the seed and the epoch, so a resumed run finds its place by arithmetic
(micro-batch number = step x accumulation) instead of replaying a sampler. A batch is a list of
rows, each row a list of example indices. Unpacked, every row holds one example: length grouping
sorts examples of similar length into the same batch (inside shuffled windows of 50 batches, as
transformers does), which cuts the padding a batch carries. Packed, a row holds as many whole
conversations as fit in `max_seq_len`; each keeps its own positions (from 0) and attends only
within itself, and no position predicts the first token of the next, so nothing leaks between
the conversations of a row.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from trainer.encode import IGNORE, Example

MEGABATCH = 50


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    """The examples' shuffled order for one epoch, a function of (seed, epoch) alone."""
    order = list(range(count))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return order


def epoch_batches(
    lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool
) -> list[list[int]]:
    """Index batches for one epoch; the longest batch comes first, so running out of memory shows
    up on the first step rather than hours in."""
    order = epoch_order(len(lengths), seed, epoch)
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


def packed_rows(lengths: list[int], max_len: int, seed: int, epoch: int) -> list[list[int]]:
    """Whole examples packed into rows of at most `max_len` tokens: each example, in the epoch's
    shuffled order, goes into the first row it fits in (first fit), so rows come out nearly full
    and in shuffled order; no example is split."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in epoch_order(len(lengths), seed, epoch):
        fits = next((r for r, free in enumerate(room) if free >= lengths[index]), None)
        if fits is None:
            rows.append([])
            room.append(max_len)
            fits = len(rows) - 1
        rows[fits].append(index)
        room[fits] -= lengths[index]
    return rows


def collate_packed(rows: list[list[Example]], pad_id: int) -> dict[str, torch.Tensor]:
    """Rows of several conversations each, right-padded to the longest row. Positions restart at 0
    with every conversation (and with the padding), and no attention mask is passed: transformers
    reads the restarts as packed sequences and keeps attention within each (a block-diagonal
    causal mask for sdpa/eager, variable-length kernels for flash attention). The first label of
    every conversation is masked, so no position predicts across a boundary."""
    width = max(sum(len(e.input_ids) for e in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for e in row:
            end = start + len(e.input_ids)
            ids[r, start:end] = torch.tensor(e.input_ids)
            labels[r, start + 1 : end] = torch.tensor(e.labels[1:])
            positions[r, start:end] = torch.arange(end - start)
            start = end
        positions[r, start:] = torch.arange(width - start)
    return {"input_ids": ids, "labels": labels, "position_ids": positions}


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
