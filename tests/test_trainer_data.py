"""Training data: OASST1 trees to conversations, other formats, bad records by reason, exact label masks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer_tiny import tiny_tokenizer
from trainer.data import SAMPLE, load_splits, read_records
from trainer.encode import IGNORE, Encoder
from trainer.formats import DataError, DataReport, Record, Turn, oasst1_conversations


def msg(mid: str, parent: str | None, role: str, text: str, rank: int | None = None, **extra) -> dict:
    return {"message_id": mid, "parent_id": parent, "message_tree_id": "t1", "role": role, "text": text,
            "rank": rank, "lang": "en", "deleted": False, "review_result": True, "synthetic": False, **extra}  # fmt: skip


def records(rows: list[dict]) -> list[Record]:
    return [Record(f"test:{i + 1}", row) for i, row in enumerate(rows)]


# A dozen messages: ranked replies at every level, a deleted best answer, spam, an empty reply.
TREE = [
    msg("q1", None, "prompter", "What is a prime number?"),
    msg("a-second", "q1", "assistant", "A number.", rank=1),
    msg("a-best", "q1", "assistant", "A whole number above 1 divisible only by 1 and itself.", rank=0),
    msg("a-spam", "q1", "assistant", "click here", rank=2, review_result=False),
    msg("a-empty", "q1", "assistant", "   "),
    msg("q2-best", "a-best", "prompter", "Is 1 prime?", rank=0),
    msg("q2-other", "a-best", "prompter", "Is 2 prime?", rank=1),
    msg("a2-deleted", "q2-best", "assistant", "removed by a moderator", rank=0, deleted=True),
    msg(
        "a2-usable", "q2-best", "assistant", "No: a prime needs exactly two divisors, and 1 has one.", rank=1
    ),
    msg("a2-third", "q2-best", "assistant", "Yes.", rank=2),
    msg("q3-spam", "a2-usable", "prompter", "buy pills", review_result=False),
    msg("a-other", "q2-other", "assistant", "Yes, the only even prime."),
]


def test_oasst1_tree_gives_the_top_ranked_path() -> None:
    report = DataReport()
    conversations = oasst1_conversations(records(TREE), report)
    assert conversations == [
        (
            Turn("user", "What is a prime number?"),
            Turn("assistant", "A whole number above 1 divisible only by 1 and itself."),
            Turn("user", "Is 1 prime?"),
            Turn("assistant", "No: a prime needs exactly two divisors, and 1 has one."),
        )
    ]
    assert report.skipped == {"deleted": 1, "spam": 2, "empty_text": 1}
    assert report.conversations == 1


def test_bad_trees_are_skipped_by_reason() -> None:
    rows = [
        *TREE,
        msg("orphan", "not-there", "assistant", "my parent is gone"),
        msg("loop-a", "loop-b", "prompter", "around"),
        msg("loop-b", "loop-a", "assistant", "and around"),
        msg("lonely", None, "prompter", "Nobody answered me."),
        msg("wrong", None, "assistant", "An answer with no question."),
    ]
    report = DataReport()
    assert len(oasst1_conversations(records(rows), report)) == 1
    assert report.skipped == {"deleted": 1, "spam": 2, "empty_text": 1, "missing_parent": 1, "cycle": 2,
                              "no_assistant_reply": 1, "roles_out_of_order": 1}  # fmt: skip
    assert report.trimmed == 0


def test_oasst1_path_ending_on_a_human_turn_is_trimmed_back_to_its_last_answer() -> None:
    follow_up = msg("q3", "a2-usable", "prompter", "And is 4 prime?", rank=0)
    lonely = {**msg("lonely", None, "prompter", "Nobody answered me."), "message_tree_id": "t2"}
    report = DataReport()
    trimmed = oasst1_conversations(records([*TREE, follow_up, lonely]), report)
    assert trimmed == oasst1_conversations(records(TREE), DataReport())  # the same four turns
    assert trimmed[0][-1] == Turn("assistant", "No: a prime needs exactly two divisors, and 1 has one.")
    assert (report.trimmed, report.skipped["no_assistant_reply"], report.conversations) == (1, 1, 1)
    assert report.to_dict()["trimmed"] == 1 and "trimmed to the last answer: 1" in report.summary()


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in rows) + "\n")
    return path


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    broken = write_jsonl(tmp_path / "broken.jsonl", [{"prompt": "a", "response": "b"}, "{not json"])
    with pytest.raises(DataError, match=r"broken\.jsonl:2: not valid JSON"):
        read_records(broken)
    missing = write_jsonl(
        tmp_path / "missing.jsonl",
        [msg("q", None, "prompter", "hi"), {"message_id": "a", "parent_id": "q", "role": "assistant"}],
    )
    with pytest.raises(DataError, match=r"missing\.jsonl:2: field 'text' is missing"):
        load_splits(str(missing))
    role = write_jsonl(
        tmp_path / "role.jsonl",
        [{"messages": [{"role": "user", "content": "x"}, {"role": "bot", "content": "y"}]}],
    )
    with pytest.raises(DataError, match=r"role\.jsonl:1: messages\[1\]: field 'role' is 'bot'"):
        load_splits(str(role))


def test_other_formats_and_their_bad_records(tmp_path: Path) -> None:
    guanaco = write_jsonl(tmp_path / "g.jsonl", [
        {"text": "### Human: Hi there### Assistant: Hello!### Human: Bye### Assistant: See you."},
        {"text": "### Human: Only a question"},
    ])  # fmt: skip
    alpaca = write_jsonl(tmp_path / "a.jsonl", [
        {"instruction": "Describe the product.", "context": "A blue mug.", "response": "A sturdy blue mug."},
        {"instruction": "Say hi", "input": "", "output": ""},
    ])  # fmt: skip
    chat = write_jsonl(tmp_path / "m.jsonl", [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                      {"role": "assistant", "content": "4"}]},
        {"messages": [{"role": "assistant", "content": "I speak first"}]},
    ])  # fmt: skip
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Capital of France?", "completion": "Paris."}])
    cases = {
        guanaco: (
            (
                Turn("user", "Hi there"),
                Turn("assistant", "Hello!"),
                Turn("user", "Bye"),
                Turn("assistant", "See you."),
            ),
            {"ends_on_human": 1},
        ),  # fmt: skip
        alpaca: (
            (Turn("user", "Describe the product.\n\nA blue mug."), Turn("assistant", "A sturdy blue mug.")),
            {"empty_text": 1},
        ),  # fmt: skip
        chat: (
            (Turn("system", "Be brief."), Turn("user", "2+2?"), Turn("assistant", "4")),
            {"roles_out_of_order": 1},
        ),
        pairs: ((Turn("user", "Capital of France?"), Turn("assistant", "Paris.")), {}),
    }
    for path, (expected, skipped) in cases.items():
        train, held, report, _ = load_splits(str(path), eval_fraction=0.0)
        assert (train, held, dict(report.skipped)) == ([expected], [], skipped), path.name


def test_sample_keeps_its_split_and_languages(tmp_path: Path) -> None:
    train, held, report, held_report = load_splits("sample")
    rows = [r.row for r in read_records(SAMPLE)]
    roots = {r["text"]: r for r in rows if r["parent_id"] is None}
    assert {roots[c[0].text]["split"] for c in train} == {"train"}
    assert {roots[c[0].text]["split"] for c in held} == {"validation"}
    assert len(train) >= 12 and len(held) >= 3
    assert {roots[c[0].text]["lang"] for c in train} >= {"en", "es", "de", "fr"}
    assert report.skipped["deleted"] >= 1 and report.skipped["spam"] >= 1
    # the same rows as Parquet give the same conversations
    import pandas as pd

    parquet = tmp_path / "sample.parquet"
    pd.DataFrame(rows).drop(columns=["emojis", "labels"]).to_parquet(parquet)
    assert load_splits(str(parquet))[:2] == (train, held)


CONV = (Turn("user", "hi"), Turn("assistant", "yo"), Turn("user", "ok?"), Turn("assistant", "no"))


def split_tokens(tokenizer, example) -> tuple[str, str]:
    """(text of the target tokens, text of the masked tokens), checking labels token by token."""
    targets, masked = [], []
    for token, label in zip(example.input_ids, example.labels, strict=True):
        assert label in (token, IGNORE)
        (targets if label == token else masked).append(token)
    return tokenizer.decode(targets), tokenizer.decode(masked)


def test_labels_masked_exactly_as_the_flag_says_with_eos_after_every_answer() -> None:
    tok = tiny_tokenizer()
    answers, _ = Encoder(tok, "guanaco", "assistant", 512, eos="turn").encode(CONV)
    assert split_tokens(tok, answers) == (
        " yo</s> no</s>",
        "<s>### Human: hi### Assistant:### Human: ok?### Assistant:",
    )
    everything, _ = Encoder(tok, "guanaco", "all", 512, eos="turn").encode(CONV)
    assert everything.input_ids == answers.input_ids
    assert everything.labels == [IGNORE] + everything.input_ids[1:]
    assert (
        tok.decode(everything.input_ids)
        == "<s>### Human: hi### Assistant: yo</s>### Human: ok?### Assistant: no</s>"
    )
    chat, _ = Encoder(tok, "chat", "assistant", 512, eos="turn").encode(CONV)
    assert split_tokens(tok, chat) == (
        "yo</s>no</s>",
        "<|user|>hi</s><|assistant|><|user|>ok?</s><|assistant|>",
    )


def test_eos_once_at_the_end_of_the_text_as_qlora_by_default() -> None:
    tok = tiny_tokenizer()
    everything, _ = Encoder(tok, "guanaco", "all", 512).encode(CONV)
    assert (
        tok.decode(everything.input_ids)
        == "<s>### Human: hi### Assistant: yo### Human: ok?### Assistant: no</s>"
    )
    assert everything.input_ids.count(tok.eos_token_id) == 1
    answers, _ = Encoder(tok, "guanaco", "assistant", 512).encode(CONV)
    assert split_tokens(tok, answers) == (
        " yo no</s>",
        "<s>### Human: hi### Assistant:### Human: ok?### Assistant:",
    )
    # a chat template that ends each turn with EOS keeps its own, and gets no second one
    chat, _ = Encoder(tok, "chat", "all", 512).encode(CONV)
    assert tok.decode(chat.input_ids) == "<|user|>hi</s><|assistant|>yo</s><|user|>ok?</s><|assistant|>no</s>"


def test_truncation_is_counted() -> None:
    tok = tiny_tokenizer()
    report = DataReport()
    long = (Turn("user", "q" * 10), Turn("assistant", "a" * 100))
    examples = Encoder(tok, "guanaco", "assistant", 70).encode_all(
        [CONV, long, (Turn("user", "q" * 80), Turn("assistant", "a"))], report
    )
    assert report.truncated == 2
    assert report.skipped == {"no_target_after_truncation": 1}
    assert [len(e.input_ids) for e in examples] == [len(Encoder(tok).encode(CONV)[0].input_ids), 70]
    assert examples[1].input_ids[-1] != tok.eos_token_id  # the cut answer lost its ending


GUANACO_TRAIN = [
    {"text": "### Human: Name a warm colour.### Assistant: Orange."},
    {"text": "### Human: Two plus two?### Assistant: Four.### Human: And doubled?### Assistant: Eight."},
    {"text": "### Human: Say hello in Spanish.### Assistant: Hola."},
]
GUANACO_EVAL = [{"text": "### Human: Opposite of up?### Assistant: Down."}]


def guanaco_folder(folder: Path) -> Path:
    """The openassistant-guanaco layout (a train and an eval JSONL), with text written for this test."""
    folder.mkdir()
    write_jsonl(folder / "openassistant_best_replies_train.jsonl", GUANACO_TRAIN)
    write_jsonl(folder / "openassistant_best_replies_eval.jsonl", GUANACO_EVAL)
    return folder


def test_guanaco_data_from_a_local_folder_keeps_its_eval_file(tmp_path: Path) -> None:
    train, held, report, held_report = load_splits(str(guanaco_folder(tmp_path / "guanaco")))
    assert report.format == held_report.format == "guanaco-text"
    assert [c[-1].text for c in train] == ["Orange.", "Eight.", "Hola."]
    assert held == [(Turn("user", "Opposite of up?"), Turn("assistant", "Down."))]
    alone = write_jsonl(tmp_path / "only.jsonl", GUANACO_TRAIN)
    assert load_splits(
        str(alone), eval_source=str(tmp_path / "guanaco" / "openassistant_best_replies_eval.jsonl")
    )[:2] == (
        train,
        held,
    )
    with pytest.raises(DataError, match=r"empty: no training data file"):
        (tmp_path / "empty").mkdir()
        load_splits(str(tmp_path / "empty"))


def test_a_hub_dataset_id_goes_to_the_hub_and_a_missing_file_is_named() -> None:
    # conftest keeps the hub offline: the id is looked up there (and its cache), not on disk
    with pytest.raises(
        DataError, match=r"no-one/no-dataset is not a local file or folder, and cannot be loaded from the hub"
    ):
        load_splits("no-one/no-dataset")
    with pytest.raises(DataError, match=r"missing/file\.jsonl: data file not found"):
        load_splits("missing/file.jsonl")


def test_train_on_auto_follows_the_data_format_as_qlora(tmp_path: Path) -> None:
    from trainer.config import build
    from trainer.train import prepare_data

    tok = tiny_tokenizer()
    alpaca = write_jsonl(tmp_path / "alpaca.jsonl", [{"instruction": "Say yes.", "output": "Yes."}] * 2)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Say no.", "completion": "No."}] * 2)
    guanaco = write_jsonl(tmp_path / "guanaco.jsonl", GUANACO_TRAIN)
    answers = {alpaca: " Yes.</s>", pairs: " No.</s>", guanaco: None}  # None: every token after BOS
    for path, targets in answers.items():
        cfg = build(overrides={"data": str(path), "eval_fraction": 0.0})
        assert cfg.train_on == "auto"
        example = prepare_data(cfg, tok).train[0]
        everything = tok.decode(example.input_ids[1:])
        assert split_tokens(tok, example)[0] == (targets or everything), path.name
        forced = build(overrides={"data": str(path), "eval_fraction": 0.0, "train_on": "all"})
        assert split_tokens(tok, prepare_data(forced, tok).train[0])[0] == everything
