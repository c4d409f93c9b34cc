"""The demo's pipeline in a reduced form: each stage leaves what the next one needs.

Offline (no benchmark mirror in reach, so the project's own sample prompts), with the judge played by
the tests' scripted OpenAI-compatible server standing in for GPT-4 (OPENAI_API_KEY set), and the
real embedded SmolLM2 trained, quantized and generating for real."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from arena.cli import main
from arena.demo import CONTESTANTS, DemoConfig, run_demo
from arena.store import Contestant, Generation, Judgment, Store
from tests.scripted_server import scripted_server_fixture  # noqa: F401

pytestmark = pytest.mark.slow


def counts(db: Path) -> dict[str, int]:
    store = Store(f"sqlite:///{db}")
    with store.session() as s:
        return {model.__tablename__: s.scalar(select(func.count()).select_from(model))
                for model in (Contestant, Generation, Judgment)}  # fmt: skip


def test_demo_pipeline_end_to_end_and_rerun_reuses(
    scripted_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    scripted_server.reply = lambda body: "Assistant 1 answered more helpfully.\n1"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GUANACO_DATA_MIRROR", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("OPENAI_BASE_URL", scripted_server.url)
    cfg = DemoConfig(workdir=tmp_path / "demo", prompts=1, train_steps=1, max_seq_len=64, max_new_tokens=8,
                     orderings=50, app=False)  # fmt: skip

    timings = run_demo(cfg, main)

    assert [name for name, _ in timings][0].startswith("contestants")  # no mirror: no paper stage
    adapter = cfg.workdir / "runs" / "smollm2-guanaco" / "adapter_config.json"
    assert adapter.is_file()
    db = cfg.workdir / "arena.db"
    assert counts(db) == {"contestants": 3, "generations": 3, "judgments": 6}  # 3 pairs x both orders
    for made in ("elo.png", "winrate.png", "leaderboard.md", "release/README.md", "release/judgments.jsonl"):
        assert (cfg.out / made).is_file(), made
    printed = capsys.readouterr().out
    assert "$ guanaco generate --benchmark sample" in printed
    assert all(name in printed for name in CONTESTANTS)
    assert "sk-test" not in (cfg.out / "release" / "judgments.jsonl").read_text()
    requests = len(scripted_server.requests)

    run_demo(DemoConfig(workdir=cfg.workdir, prompts=1, train_steps=1, max_seq_len=64, max_new_tokens=8,
                        orderings=50, app=False), main)  # fmt: skip

    assert counts(db) == {"contestants": 3, "generations": 3, "judgments": 6}
    assert len(scripted_server.requests) == requests  # nothing judged twice
    assert "$ guanaco train" not in capsys.readouterr().out  # the adapter is reused
