"""The generation runner and the transformers backend, on a tiny random model (and SmolLM2 once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from arena.backends import GenerateParams, Request
from arena.backends.transformers_backend import TransformersBackend
from arena.cli import UserError, main
from arena.generate import generate
from arena.models import ModelSpec, add_local, ensure_smollm2
from arena.query.writes import insert_ignore
from arena.store import Generation, Prompt, Store
from tests import tiny_model
from tests.tiny_model import build_tiny_model, cpu_has_avx512_bf16, force_bnb_cpu_path
from trainer.bnb_cpu import packed_layout_fits

tiny_model_dir = tiny_model.tiny_model_dir  # the session fixture

GREEDY = GenerateParams(temperature=0.0, max_new_tokens=12, batch_size=4)
QUESTIONS = ["Write a poem about the sea.", "Hi", "Explain quantum computing in simple terms, please, now.",
             "How can I improve my time management skills?", "The quick brown fox?"]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run far faster on one thread when the machine's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def add_prompts(
    store: Store, benchmark: str, questions: list[str], second: dict[int, str] | None = None
) -> None:
    rows = [{"benchmark": benchmark, "key": f"q{i}", "turns": [q, *([second[i]] if second and i in second else [])]}
            for i, q in enumerate(questions)]  # fmt: skip
    with store.session() as session:
        insert_ignore(session, Prompt, rows)


def register(store: Store, name: str, base: Path | str, **kwargs) -> None:
    with store.session() as session:
        add_local(session, name, str(base), **kwargs)


def texts(backend: TransformersBackend, questions: list[str]) -> list[str]:
    return [r.raw for r in backend.generate([Request([{"role": "user", "content": q}]) for q in questions])]


def test_left_padded_batches_answer_as_one_prompt_at_a_time(tiny_model_dir):
    backend = TransformersBackend(ModelSpec("tiny", str(tiny_model_dir)), GREEDY)
    assert backend.tokenizer.padding_side == "left"
    batched = texts(backend, QUESTIONS)
    alone = [texts(backend, [q])[0] for q in QUESTIONS]
    assert batched == alone
    assert len(set(batched)) > 1


def test_stop_strings_end_the_turn_and_raw_text_is_kept(tiny_model_dir):
    free = TransformersBackend(
        ModelSpec("tiny", str(tiny_model_dir)), GenerateParams(temperature=0.0, max_new_tokens=24)
    )
    (full,) = free.generate([Request([{"role": "user", "content": "Hi"}])])
    stop = full.raw[len(full.raw) // 2 :][:3]
    assert stop.strip(), full.raw
    stopped = TransformersBackend(ModelSpec("tiny", str(tiny_model_dir)),
                                  GenerateParams(temperature=0.0, max_new_tokens=24, stop=(stop,)))  # fmt: skip
    (cut,) = stopped.generate([Request([{"role": "user", "content": "Hi"}])])
    assert stop in cut.raw and stop not in cut.text
    assert cut.text == full.raw[: full.raw.index(stop)].strip()
    assert cut.completion_tokens < full.completion_tokens == 24


def test_runner_stores_provenance_resumes_and_never_duplicates(store, tiny_model_dir):
    add_prompts(store, "t", QUESTIONS, second={0: "And now shorter?"})
    register(store, "tiny", tiny_model_dir)
    register(store, "tiny-guanaco", tiny_model_dir, prompt_format="guanaco")
    first = generate(store, "t", ["tiny", "tiny-guanaco"], "transformers", GREEDY, limit=2)
    assert first.generated.tolist() == [2, 2]
    second = generate(store, "t", ["tiny", "tiny-guanaco"], "transformers", GREEDY)
    assert second.generated.tolist() == [3, 3] and second.skipped.tolist() == [2, 2]
    again = generate(store, "t", ["tiny"], "transformers", GREEDY)
    assert again.generated.tolist() == [0]
    with store.session() as session:
        gens = session.scalars(select(Generation)).all()
        assert len(gens) == 10 == len({(g.prompt_id, g.contestant_id) for g in gens})
        prompts = {p.id: p for p in session.scalars(select(Prompt))}
        for g in gens:
            assert g.params == {"temperature": 0.0, "top_p": 0.9, "max_new_tokens": 12}
            assert g.seed == 0 and g.backend == "transformers" and g.seconds > 0 and g.run_id
            assert 0 < g.completion_tokens <= 12 * len(g.turn_texts) and g.prompt_tokens > 0
            assert g.meta["model"]["base_model"] == str(tiny_model_dir)
            assert prompts[g.prompt_id].turns[0] in g.prompt_sent
        guanaco = [g for g in gens if g.meta["model"]["prompt_format"] == "guanaco"]
        assert all(g.prompt_sent.startswith("A chat between a curious human") for g in guanaco)
        two_turns = [g for g in gens if len(g.turn_texts) == 2]
        assert len(two_turns) == 2
        for g in two_turns:
            assert g.text == g.turn_texts[0]
            assert g.turn_texts[0] in g.meta["turn_prompts_sent"][1]
            assert "And now shorter?" in g.meta["turn_prompts_sent"][1]


def test_four_bit_loading_uses_real_bitsandbytes_layers(store, tiny_model_dir):
    import bitsandbytes as bnb

    backend = TransformersBackend(ModelSpec("tiny4", str(tiny_model_dir), quantization="nf4"), GREEDY)
    layers = [m for m in backend.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and layers[0].weight.quant_state.quant_type == "nf4"
    assert all(len(r) > 0 for r in texts(backend, QUESTIONS[:2]))
    # on this CPU's own path: hidden size 32 leaves some layers too small to pack even where it can
    assert sum(backend.identity()["four_bit_paths"].values()) == len(layers) == 14


def four_bit(model_dir: Path) -> TransformersBackend:
    return TransformersBackend(ModelSpec("tiny4", str(model_dir), quantization="nf4"), GREEDY)


def logits_with_gradients(backend: TransformersBackend, train: bool = False):
    """A forward pass with gradients on (in training or eval mode), as a caller sharing the model
    might make: left to bitsandbytes, it runs unpacked until an eval-mode no-grad call packs."""
    ids = backend.tokenizer(QUESTIONS[:2], return_tensors="pt", padding=True)
    backend.model.train(train)
    logits = backend.model(**ids).logits.detach()
    backend.model.eval()
    return logits


def assert_calls_do_not_change_the_path(backend: TransformersBackend) -> None:
    """Answers and logits are the same before and after calls of every kind."""
    import torch

    before = logits_with_gradients(backend)
    first = texts(backend, QUESTIONS[:3])  # eval mode, no gradients: where bitsandbytes would pack
    assert torch.equal(logits_with_gradients(backend), before)
    logits_with_gradients(backend, train=True)
    assert texts(backend, QUESTIONS[:3]) == first


def test_packed_layout_fits_whole_tiles_of_rows_and_whole_blocks_of_columns():
    import bitsandbytes as bnb
    import torch

    def layer(rows: int, cols: int):
        return bnb.nn.Linear4bit(cols, rows, bias=False, compute_dtype=torch.float32).to("cpu")

    fits = {(rows, cols): packed_layout_fits(layer(rows, cols)) for rows, cols in
            [(64, 64), (32, 128), (96, 192), (16, 64), (48, 64), (64, 32), (64, 96)]}  # fmt: skip
    assert [shape for shape, ok in fits.items() if ok] == [(64, 64), (32, 128), (96, 192)]


def test_four_bit_unpacked_only_cpu_answers_do_not_depend_on_earlier_calls(tiny_model_dir, monkeypatch):
    force_bnb_cpu_path(monkeypatch, "unpacked-only")
    backend = four_bit(tiny_model_dir)
    assert backend.identity()["four_bit_paths"] == {"unpacked": 14}
    assert_calls_do_not_change_the_path(backend)
    assert texts(backend, QUESTIONS[:3]) == texts(four_bit(tiny_model_dir), QUESTIONS[:3])


def test_four_bit_packed_capable_cpu_falls_back_to_unpacked_for_shapes_it_cannot_pack(monkeypatch, tmp_path):
    small = build_tiny_model(tmp_path / "small", hidden=16)  # every layer narrower than one 64-block
    force_bnb_cpu_path(monkeypatch, "unpacked-only")
    expected = texts(four_bit(small), QUESTIONS[:3])
    force_bnb_cpu_path(monkeypatch, "packed-capable")
    backend = four_bit(small)  # bitsandbytes alone would crash at the first eval-mode call
    assert backend.identity()["four_bit_paths"] == {"unpacked": 14}
    assert texts(backend, QUESTIONS[:3]) == expected


@pytest.mark.skipif(
    not cpu_has_avx512_bf16(),
    reason="the packed 4-bit kernel needs a CPU with avx512_bf16 (this one lacks it)",
)
def test_four_bit_packed_path_is_fixed_at_load_and_answers_do_not_depend_on_earlier_calls(tmp_path):
    wide = build_tiny_model(tmp_path / "wide", hidden=64)  # every layer fits the packed layout
    backend = four_bit(wide)
    assert backend.identity()["four_bit_paths"] == {"packed": 14}
    assert_calls_do_not_change_the_path(backend)
    assert texts(backend, QUESTIONS[:3]) == texts(four_bit(wide), QUESTIONS[:3])
    mixed = four_bit(build_tiny_model(tmp_path / "mixed", hidden=32)).identity()["four_bit_paths"]
    assert mixed["packed"] > 0 and mixed["unpacked"] > 0


def make_adapter(base: Path, dest: Path) -> Path:
    """A LoRA adapter with non-zero weights (so it changes the answers), saved as peft does."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))  # fmt: skip
    for name, param in model.named_parameters():
        if "lora_" in name:
            param.data.normal_(0, 2.0)
    model.save_pretrained(dest)
    return dest


def test_adapter_via_peft_changes_the_answers_and_its_base_is_read_from_it(store, tiny_model_dir, tmp_path):
    adapter = make_adapter(tiny_model_dir, tmp_path / "adapter")
    add_prompts(store, "t", QUESTIONS[:3])
    register(store, "base", tiny_model_dir)
    with store.session() as session:
        add_local(session, "tuned", adapter=str(adapter))
    generate(store, "t", ["base", "tuned"], "transformers", GREEDY)
    with store.session() as session:
        rows = session.execute(select(Generation.contestant_id, Generation.raw_text, Generation.meta)).all()
    by_model = {}
    for _contestant, raw, meta in rows:
        by_model.setdefault(meta["model"]["name"], []).append(raw)
        assert meta["model"]["base_model"] == str(tiny_model_dir)
    assert by_model["base"] != by_model["tuned"]


def test_adapter_that_does_not_fit_its_base_is_a_clear_error(tiny_model_dir, tmp_path):
    wider = build_tiny_model(tmp_path / "wider", hidden=48)
    adapter = make_adapter(wider, tmp_path / "adapter")
    with pytest.raises(UserError, match="does not fit base model"):
        TransformersBackend(ModelSpec("bad", str(tiny_model_dir), adapter=str(adapter)), GREEDY)


def test_bad_input_unknown_model_empty_benchmark_empty_prompt_file(
    store, db_url, tiny_model_dir, tmp_path, capsys
):
    register(store, "tiny", tiny_model_dir)
    with pytest.raises(UserError, match="no prompts"):
        generate(store, "nothing-here", ["tiny"], "transformers", GREEDY)
    add_prompts(store, "t", QUESTIONS[:1])
    with pytest.raises(UserError, match=r"unknown model\(s\): ghost"):
        generate(store, "t", ["tiny", "ghost"], "transformers", GREEDY)
    with store.session() as session:
        insert_ignore(
            session, Prompt, [{"benchmark": "blank", "key": "b1", "turns": ["  "], "source": "x.jsonl"}]
        )
    with pytest.raises(UserError, match="blank/b1.*x.jsonl.*turns is empty"):
        generate(store, "blank", ["tiny"], "transformers", GREEDY)
    empty = tmp_path / "questions.jsonl"
    empty.write_text("")
    assert (
        main(
            ["generate", "--benchmark", "vicuna", "--prompts", str(empty), "--models", "tiny", "--db", db_url]
        )
        == 2
    )
    assert "questions.jsonl" in capsys.readouterr().err
    with store.session() as session:
        assert session.scalar(select(func.count(Generation.id))) == 0


def count_generations(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db, timeout=30) as con:
        return con.execute("select count(*) from generations").fetchone()[0]


def test_a_killed_run_resumes_without_duplicates(store, db_url, tiny_model_dir, tmp_path):
    total = 24
    add_prompts(store, "t", [f"{QUESTIONS[i % 5]} {i}" for i in range(total)])
    register(store, "tiny", tiny_model_dir)
    cmd = [sys.executable, "-m", "arena", "generate", "--benchmark", "t", "--models", "tiny", "--batch-size", "1",
           "--max-new-tokens", "32", "--db", db_url]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = Path(db_url.removeprefix("sqlite:///"))
    try:
        while count_generations(db) < 3 and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = count_generations(db)
    assert 3 <= killed_at < total, "the run finished before it could be killed"
    assert main(["generate", *cmd[4:-5], "8", *cmd[-4:]]) == 0  # the same run resumed, in bigger batches
    with store.session() as session:
        pairs = session.execute(select(Generation.prompt_id, Generation.contestant_id)).all()
    assert len(pairs) == total == len(set(pairs))


@pytest.mark.slow
def test_smollm2_end_to_end_through_the_command_line(db_url, capsys):
    ensure_smollm2()
    store = Store(db_url)
    add_prompts(store, "smoke", ["What is the capital of France?", "Name a colour."])
    assert main(["models", "pull", "smollm2", "--db", db_url]) == 0
    argv = [
        "generate",
        "--benchmark",
        "smoke",
        "--models",
        "smollm2",
        "--max-new-tokens",
        "16",
        "--db",
        db_url,
    ]
    assert main(argv) == 0
    assert "smollm2" in capsys.readouterr().out
    with store.session() as session:
        gens = session.scalars(select(Generation)).all()
    assert len(gens) == 2
    for g in gens:
        assert g.text.strip() and g.completion_tokens <= 16
        assert g.prompt_sent.startswith("<|im_start|>system")
        assert g.params == {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 16}
    assert "Paris" in gens[0].text or len(gens[0].text.split()) >= 2


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(
    not _cuda(), reason="the vllm backend needs a CUDA GPU (none here); checked on the GPU machine"
)
def test_vllm_backend_answers_with_and_without_a_lora_adapter(store, tmp_path):
    pytest.importorskip("vllm", reason="the vllm extra is not installed")
    smollm2 = ensure_smollm2()  # vLLM's kernels want real head sizes, not the tiny model's
    adapter = make_adapter(smollm2, tmp_path / "adapter")
    add_prompts(store, "t", QUESTIONS[:3], second={0: "And now shorter?"})
    register(store, "base", smollm2)
    register(store, "tuned", smollm2, adapter=str(adapter))
    report = generate(store, "t", ["base", "tuned"], "vllm", GREEDY)
    assert report.generated.tolist() == [3, 3] and set(report.backend) == {"vllm"}
    with store.session() as session:
        gens = session.scalars(select(Generation)).all()
    assert len(gens) == 6 and all(g.backend == "vllm" and g.completion_tokens for g in gens)
