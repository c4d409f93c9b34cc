"""A tiny random-weight Llama-style model and a byte-level BPE tokenizer, built offline in seconds.

Real transformers classes, real weights file, real tokenizer files: anything that loads a
checkpoint directory (generation backends, trainers, bitsandbytes, peft) can be tested on it.

    from tests.tiny_model import build_tiny_model, tiny_model_dir   # the fixture is session-scoped
"""

from __future__ import annotations

from pathlib import Path

import pytest

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "A chat between a curious human and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "### Human: How can I improve my time management skills? ### Assistant: Make a plan.",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,;:'\"()[]{}#",
    "Write a poem about the sea. Explain quantum computing in simple terms.",
]


def build_tokenizer(vocab_size: int = 400, chat_template: bool = True):
    """A byte-level BPE tokenizer trained on a few sentences: every string round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>",
        pad_token="<pad>",
    )  # fmt: skip
    if chat_template:
        tokenizer.chat_template = CHATML
    return tokenizer


def build_tiny_model(dest: Path, chat_template: bool = True, hidden: int = 32, seed: int = 0) -> Path:
    """Save a 2-layer Llama (hidden size `hidden`) with random weights plus its tokenizer to `dest`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(chat_template=chat_template)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return Path(dest)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny chat model (ChatML template) per test session."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


CPU_PATHS = ("packed-capable", "unpacked-only")  # as bitsandbytes decides with or without AVX512-BF16


def force_bnb_cpu_path(monkeypatch: pytest.MonkeyPatch, cpu: str) -> None:
    """Make the 4-bit layers built from now on decide as bitsandbytes does on a CPU with
    (`packed-capable`) or without (`unpacked-only`) AVX512-BF16: each layer reads the flag when it
    is built. Only the decision is forced: the packed kernel itself needs the instruction set, so
    a test that forces `packed-capable` on a CPU without it must not let any layer reach it."""
    import bitsandbytes.nn.modules

    assert cpu in CPU_PATHS, cpu
    monkeypatch.setattr(bitsandbytes.nn.modules, "has_avx512bf16", lambda: cpu == "packed-capable")


def cpu_has_avx512_bf16() -> bool:
    from bitsandbytes.functional import has_avx512bf16

    return bool(has_avx512bf16())
