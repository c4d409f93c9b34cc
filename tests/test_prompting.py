"""Prompt formats against the paper's released prompts, and cutting answers at the turn's end."""

from __future__ import annotations

import json

import pytest

from arena.prompting import conversation, cut_at_turn_end, guanaco, normalise, render, resolve_format
from tests.tiny_model import build_tokenizer


def released_vicuna(shared_data, pattern: str = "*.jsonl") -> list[dict]:
    files = sorted((shared_data / "qlora-eval" / "generations" / "vicuna").glob(pattern))
    return [json.loads(line) for path in files for line in path.open() if '"prompt"' in line]


def test_guanaco_format_matches_every_released_prompt_byte_for_byte(shared_data):
    records = released_vicuna(shared_data)
    assert len(records) > 2000
    for record in records:
        assert guanaco(conversation([], [record["text"]], [])) == record["prompt"]


def test_released_65b_answers_run_on_into_a_new_human_turn_and_are_cut_there(shared_data):
    records = released_vicuna(shared_data, "65b-*.jsonl")
    guanaco_65b = released_vicuna(shared_data, "65b-guanaco-*.jsonl")
    ran_on = [r for r in records if "### Human:" in r["generation"]]
    # Measured: 137 of 640 answers of the 65B models (21%), 23 of 80 of Guanaco-65B (29%).
    assert (len(ran_on), len(records)) == (137, 640)
    assert sum("### Human:" in r["generation"] for r in guanaco_65b) == 23
    for record in ran_on:
        cut = cut_at_turn_end(record["generation"])
        assert "### Human:" not in cut and cut
        assert record["generation"].startswith(cut)


def test_cut_at_turn_end_stops_at_the_first_marker_and_strips():
    assert cut_at_turn_end(" Paris. ### Human: and Rome? ### Assistant: Rome.") == "Paris."
    assert cut_at_turn_end("Hi<|im_end|>\n<|im_start|>user") == "Hi"
    assert cut_at_turn_end("no marker at all ") == "no marker at all"
    assert cut_at_turn_end("a STOP b", stops=("STOP",)) == "a"


def test_mt_bench_second_turn_includes_the_first_answer():
    first = conversation([], ["Q1", "Q2"], [])
    second = conversation([], ["Q1", "Q2"], ["A1"])
    assert first == [{"role": "user", "content": "Q1"}]
    assert second[-3:] == [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                           {"role": "user", "content": "Q2"}]  # fmt: skip
    assert guanaco(second).endswith(" ### Human: Q1 ### Assistant: A1 ### Human: Q2 ### Assistant:")
    with pytest.raises(ValueError, match="already answered"):
        conversation([], ["Q1"], ["A1"])


def test_oa_context_is_rendered_before_the_question_in_both_formats():
    context = [{"role": "prompter", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]
    messages = conversation(context, ["What is 2+2?"], [])
    assert guanaco(messages).endswith(
        "### Human: Hi there ### Assistant: Hello! ### Human: What is 2+2? ### Assistant:"
    )
    chat = render(messages, "chat", build_tokenizer())
    assert chat.index("Hi there") < chat.index("Hello!") < chat.index("What is 2+2?")
    assert chat.endswith("<|im_start|>assistant\n")


def test_auto_format_follows_the_tokenizer():
    assert resolve_format("auto", build_tokenizer(chat_template=True)) == "chat"
    assert resolve_format("auto", build_tokenizer(chat_template=False)) == "guanaco"
    with pytest.raises(ValueError, match="chat template"):
        resolve_format("chat", build_tokenizer(chat_template=False))
    with pytest.raises(ValueError, match="unknown prompt format"):
        resolve_format("alpaca", None)


def test_a_message_without_a_known_role_is_a_clear_error():
    with pytest.raises(ValueError, match="message 1"):
        normalise([{"role": "user", "content": "x"}, {"role": "narrator", "content": "y"}])
