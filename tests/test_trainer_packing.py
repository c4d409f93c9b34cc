"""Packing: a packed row's loss is the sum of its conversations' losses run one by one (nothing
leaks between them), positions restart and boundary labels are masked; rows hold whole examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trainer_tiny import tiny_checkpoint
from trainer.batches import collate, collate_packed, packed_rows, target_count
from trainer.config import build
from trainer.encode import IGNORE, Example
from trainer.loss import add_token_loss
from trainer.train import Loop, token_loss


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


def examples() -> list[Example]:
    """Three conversations of different lengths, the last with its prompt out of the loss."""
    generator = torch.Generator().manual_seed(0)
    made = []
    for length, prompt in ((7, 0), (12, 0), (9, 4)):
        ids = torch.randint(4, 250, (length,), generator=generator).tolist()
        made.append(Example(ids, [IGNORE] * prompt + ids[prompt:]))
    return made


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_packed_row_loses_exactly_what_its_conversations_lose_one_by_one(
    tiny: Path, attention: str
) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny, attn_implementation=attention)
    add_token_loss(model)
    convs = examples()
    with torch.no_grad():
        alone = sum(float(token_loss(model, collate([e], pad_id=3))) for e in convs)
        packed = collate_packed([convs, convs[:1]], pad_id=3)  # a second, padded row
        together = float(token_loss(model, packed))
        # the same row without the restarts: one long sequence, attending across the boundaries
        leaky = dict(
            packed, position_ids=torch.arange(packed["input_ids"].size(1)).expand_as(packed["input_ids"])
        )
        leaked = float(token_loss(model, leaky))
        first = float(token_loss(model, collate(convs[:1], pad_id=3)))
    assert together == pytest.approx(alone + first, rel=1e-5)
    assert abs(leaked - together) > 1e-3  # the test can tell a leak
    assert target_count(packed) == sum(e.target_tokens for e in [*convs, convs[0]])


def test_packed_positions_restart_and_boundary_labels_are_masked() -> None:
    convs = examples()
    batch = collate_packed([convs[:2], convs[2:]], pad_id=3)
    assert batch["input_ids"].shape == (2, 19) and "attention_mask" not in batch
    assert batch["position_ids"][0].tolist() == [*range(7), *range(12)]
    assert batch["position_ids"][1].tolist() == [*range(9), *range(10)]  # the padding is a segment of its own
    assert batch["input_ids"][0].tolist() == convs[0].input_ids + convs[1].input_ids
    labels = batch["labels"]
    assert labels[0, 7] == IGNORE  # the second conversation's first token: the first one's last position
    assert labels[0, 8:].tolist() == convs[1].labels[1:]  # predicts nothing
    assert labels[1, 9:].eq(IGNORE).all() and labels[1, :4].eq(IGNORE).all() and labels[1, 4] != IGNORE


def test_rows_hold_whole_examples_once_each_within_the_length() -> None:
    lengths = [5, 30, 17, 64, 1, 33, 40, 8, 8, 60, 12]
    rows = packed_rows(lengths, 64, seed=1, epoch=0)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    assert len(rows) <= 6  # 278 tokens: first fit wastes little
    assert rows == packed_rows(lengths, 64, seed=1, epoch=0) != packed_rows(lengths, 64, seed=1, epoch=1)


def test_training_with_packing_takes_more_real_tokens_per_step(tiny: Path, tmp_path: Path) -> None:
    settings = {"base": str(tiny), "max_seq_len": 1024, "batch_size": 1, "grad_accum": 1, "max_steps": 2,
                "max_eval_samples": 0}  # fmt: skip
    tokens = {}
    for packing in (False, True):
        loop = Loop(
            build("smoke", overrides={**settings, "packing": packing, "out": str(tmp_path / str(packing))})
        )
        rows = [loop.train_step() for _ in range(2)]
        assert all(torch.isfinite(torch.tensor(row["loss"])) for row in rows)
        tokens[packing] = sum(row["real_tokens"] for row in rows)
    assert tokens[True] > 1.5 * tokens[False]
