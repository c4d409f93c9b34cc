"""The real path: SmolLM2 served by `transformers serve` on 127.0.0.1 judges two matches."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from arena.cli import main
from arena.query.judgments import read_judgments
from arena.store import Judgment, Store
from foundations.smollm2 import ensure_smollm2
from judges.serve import serve_local, served_name
from tests.judge_helpers import fill_store


@pytest.mark.slow
def test_smollm2_judges_two_matches_over_real_http(store: Store, db_url: str) -> None:
    fill_store(store, prompts=1)
    path = ensure_smollm2()
    with serve_local(path) as base_url:
        args = ["judge", "--db", db_url, "--benchmark", "vicuna", "--models", "alpha,beta",
                "--judge-model", served_name(path), "--judge-name", "smollm2", "--base-url", base_url,
                "--max-tokens", "8", "--timeout", "300"]  # fmt: skip
        assert main(args) == 0
    frame = read_judgments(store)
    assert len(frame) == 2 and set(frame.judge) == {"smollm2"}
    # a 135M model rarely ends on a bare 1/2/3: unparsed is an honest outcome, an error is not
    assert set(frame.status) <= {"ok", "unparsed"}, frame.status
    with store.session() as session:
        rows = session.execute(select(Judgment.raw, Judgment.completion_tokens)).all()
    assert all(raw and tokens for raw, tokens in rows)
