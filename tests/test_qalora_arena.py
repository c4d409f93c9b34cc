"""docs/qalora.md's command sequence at test size: a QLoRA and a QA-LoRA adapter on a tiny Llama, both
merged to INT4, registered, generating with transformers on the CPU, and judged against each other by
the tests' scripted OpenAI-compatible server over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from arena.cli import main
from arena.query.judgments import read_judgments
from arena.store import Contestant, Generation, Store
from tests.scripted_server import scripted_server_fixture  # noqa: F401
from tests.trainer_tiny import tiny_checkpoint

TRAIN = ["--preset", "smoke", "--max-steps", "2", "--max-seq-len", "64", "--max-eval-samples", "2"]


def test_qlora_and_qalora_int4_models_generate_and_are_judged(
    scripted_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    scripted_server.reply = lambda body: "Assistant 2 is better.\n2"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    tiny = str(tiny_checkpoint(tmp_path / "tiny"))
    db = ["--db", f"sqlite:///{tmp_path / 'arena.db'}"]
    runs, merged = tmp_path / "runs", tmp_path / "merged"
    steps = [
        ["train", *TRAIN, "--base", tiny, "--method", "qlora", "--out", str(runs / "qlora"), *db],
        ["train", *TRAIN, "--base", tiny, "--method", "qalora", "--bits", "4", "--group-size", "32",
         "--out", str(runs / "qalora"), *db],
        ["merge", str(runs / "qlora"), "--out", str(merged / "qlora-int4"), "--bits", "4", "--group-size", "32", *db],
        ["merge", str(runs / "qalora"), "--out", str(merged / "qalora-int4"), "--method", "qalora", *db],
        ["models", "add", "qlora-int4", "--qalora", str(merged / "qlora-int4"), "--format", "guanaco", *db],
        ["models", "add", "qalora-int4", "--qalora", str(merged / "qalora-int4"), "--format", "guanaco", *db],
        ["generate", "--benchmark", "sample", "--models", "qlora-int4,qalora-int4", "--backend", "transformers",
         "--limit", "1", "--max-new-tokens", "6", "--temperature", "0", *db],
        ["judge", "--benchmark", "sample", "--models", "qlora-int4,qalora-int4", "--judge-model", "judge",
         "--base-url", scripted_server.url, "--template", "qlora-vicuna", "--orders", "both", *db],
        ["leaderboard", "--benchmark", "sample", "--judge", "judge", "--method", "elo", "--orderings", "10", *db],
    ]  # fmt: skip
    for argv in steps:
        assert main(argv) == 0, argv
    wrong = ["merge", str(runs / "qlora"), "--out", str(tmp_path / "x"), *db]
    assert main([*wrong, "--method", "qalora"]) == 2  # a QLoRA adapter has nothing to fold
    assert main([*wrong, "--group-size", "64"]) == 2  # groups without --bits
    assert not (tmp_path / "x").exists()

    store = Store(db[1])
    with store.session() as session:
        quantization = dict(session.execute(select(Contestant.name, Contestant.quantization)).all())
        generations = session.execute(select(Generation.completion_tokens, Generation.text)).all()
    assert quantization == {"qlora-int4": "int4-g32", "qalora-int4": "int4-g32"}
    assert len(generations) == 2 and all(tokens for tokens, _ in generations)
    frame = read_judgments(store)
    assert len(frame) == 2 and set(frame.status) == {"ok"}  # both slot orders, verdicts parsed
    assert len(scripted_server.requests) == 2
    board = capsys.readouterr().out.split("elo")[-1]  # one win each: the judge always picks slot 2
    assert "qalora-int4" in board and "qlora-int4" in board
