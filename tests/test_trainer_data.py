"""Training data: OASST1 trees to conversations, other formats, bad records by reason, exact label masks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer_tiny import tiny_tokenizer
from trainer.data import (
    IGNORE,
    SAMPLE,
    DataError,
    DataReport,
    Encoder,
    Record,
    Turn,
    load_splits,
    oasst1_conversations,
    read_records,
)


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
                              "ends_on_human": 1, "roles_out_of_order": 1}  # fmt: skip


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


def test_labels_masked_exactly_as_the_flag_says() -> None:
    tok = tiny_tokenizer()
    answers, _ = Encoder(tok, "guanaco", "assistant", 512).encode(CONV)
    assert split_tokens(tok, answers) == (
        " yo</s> no</s>",
        "<s>### Human: hi### Assistant:### Human: ok?### Assistant:",
    )
    everything, _ = Encoder(tok, "guanaco", "all", 512).encode(CONV)
    assert everything.input_ids == answers.input_ids
    assert everything.labels == [IGNORE] + everything.input_ids[1:]
    assert (
        tok.decode(everything.input_ids)
        == "<s>### Human: hi### Assistant: yo</s>### Human: ok?### Assistant: no</s>"
    )
    chat, _ = Encoder(tok, "chat", "assistant", 512).encode(CONV)
    assert split_tokens(tok, chat) == (
        "yo</s>no</s>",
        "<|user|>hi</s><|assistant|><|user|>ok?</s><|assistant|>",
    )


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
