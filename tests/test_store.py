"""The store on SQLite and PostgreSQL (every test here runs on both: see BOTH_DATABASES in conftest.py)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from arena.store import (
    Generation,
    Judgment,
    Prompt,
    Store,
    get_or_create_contestant,
    insert_ignore,
    judgments_frame,
)


def seed_pair(store: Store) -> tuple[int, int, int]:
    """One prompt answered by two contestants; returns (prompt id, generation a, generation b)."""
    with store.session() as s:
        insert_ignore(
            s, Prompt, [{"benchmark": "vicuna", "key": "1", "turns": ["Hi?"], "category": "generic"}]
        )
        prompt_id = s.scalar(select(Prompt.id))
        gens = []
        for name in ("a", "b"):
            contestant = get_or_create_contestant(s, name, kind="local")
            insert_ignore(
                s, Generation, [{"prompt_id": prompt_id, "contestant_id": contestant.id, "text": name}]
            )
            gens.append(s.scalar(select(Generation.id).where(Generation.contestant_id == contestant.id)))
    return prompt_id, gens[0], gens[1]


def judgment(prompt_id: int, g1: int, g2: int, judge: str = "gpt-4", verdict: str = "1") -> dict:
    return {"judge": judge, "template_id": "t", "template_hash": "h", "prompt_id": prompt_id,
            "generation1_id": g1, "generation2_id": g2, "verdict": verdict, "status": "ok"}  # fmt: skip


def count(store: Store, model: type) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_insert_ignore_is_idempotent(store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(store)
    rows = [judgment(prompt_id, g1, g2), judgment(prompt_id, g2, g1, verdict="2")]
    with store.session() as s:
        assert insert_ignore(s, Judgment, rows + rows) == 2
    with store.session() as s:
        assert insert_ignore(s, Judgment, rows) == 0
    seed_pair(store)
    assert count(store, Judgment) == 2
    assert count(store, Generation) == 2


def test_failed_transaction_leaves_store_unchanged(store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(store)
    with pytest.raises(RuntimeError), store.session() as s:
        insert_ignore(s, Judgment, [judgment(prompt_id, g1, g2)])
        raise RuntimeError("import failed half-way")
    assert count(store, Judgment) == 0


def test_judgments_frame_names_models_by_slot_and_filters_judges(store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(store)
    rows = [judgment(prompt_id, g1, g2), judgment(prompt_id, g2, g1, judge="human:ann", verdict="tie"),
            judgment(prompt_id, g1, g2, judge="human:bob", verdict="2")]  # fmt: skip
    with store.session() as s:
        insert_ignore(s, Judgment, rows)
        frame = judgments_frame(s, benchmark="vicuna")
        humans = judgments_frame(s, judge="human")
        gpt4 = judgments_frame(s, judge="gpt-4")
    assert list(frame.model_1) == ["a", "b", "a"]
    assert list(frame.model_2) == ["b", "a", "b"]
    assert sorted(humans.judge) == ["human:ann", "human:bob"]
    assert list(gpt4.verdict) == ["1"]


def test_concurrent_writers_store_each_record_once(store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(store)
    rows = [judgment(prompt_id, g1, g2, judge=f"human:{i % 5}") for i in range(20)]

    def write() -> None:
        with Store(store.url).session() as s:
            insert_ignore(s, Judgment, rows)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count(store, Judgment) == 5
