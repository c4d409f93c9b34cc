"""A small arena in a real store for the app's tests: prompts, contestants, answers, judgments."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from arena.query.contestants import upsert_contestant
from arena.query.writes import insert_ignore
from arena.store import Generation, Judgment, Prompt, Store

PAYLOAD = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">${window.__pwned=3}'
"""An answer that would run script if the page ever rendered model output as raw HTML."""


def seed_arena(
    store: Store, models: tuple[str, ...] = ("alpha", "beta", "gamma"), prompts: int = 4, payload: bool = True
) -> dict[tuple[str, str], int]:
    """`prompts` vicuna prompts answered by every model; returns generation ids by (prompt key, model).

    The first model's answer to prompt 0 is :data:`PAYLOAD` when `payload` is set; prompt 1's
    answers are long, to check that the layout holds."""
    with store.session() as s:
        insert_ignore(
            s,
            Prompt,
            [
                {
                    "benchmark": "vicuna",
                    "key": str(i),
                    "category": "writing" if i % 2 else "math",
                    "turns": [f"Question number {i}: explain something."],
                }
                for i in range(prompts)
            ],  # fmt: skip
        )
        prompt_ids = dict(s.execute(select(Prompt.key, Prompt.id)).all())
        rows = []
        for name in models:
            contestant = upsert_contestant(s, name, kind="local")
            for key, prompt_id in prompt_ids.items():
                text = f"{name} answers question {key}."
                if key == "1":
                    text = "\n\n".join(f"{name} paragraph {j}: " + "long words " * 40 for j in range(40))
                if payload and key == "0" and name == models[0]:
                    text = PAYLOAD
                rows.append({"prompt_id": prompt_id, "contestant_id": contestant.id, "text": text})
        insert_ignore(s, Generation, rows)
        generations = s.execute(
            select(Prompt.key, Generation.contestant_id, Generation.id).join(
                Prompt, Prompt.id == Generation.prompt_id
            )
        ).all()
        names = {upsert_contestant(s, n).id: n for n in models}
    return {(key, names[cid]): gid for key, cid, gid in generations if cid in names}


def add_judgment(
    store: Store, g1: int, g2: int, verdict: str, judge: str = "openai:gpt-4", raw: str = "", **extra
) -> int:
    """One judgment of generation `g1` (slot 1) against `g2`; returns its id."""
    with store.session() as s:
        prompt_id = s.get(Generation, g1).prompt_id
        row = {"judge": judge, "template_id": "pairwise", "template_hash": "h" * 64, "prompt_id": prompt_id,
               "generation1_id": g1, "generation2_id": g2, "verdict": verdict, "status": "ok", "raw": raw,
               **extra}  # fmt: skip
        insert_ignore(s, Judgment, [row])
        return s.scalar(
            select(Judgment.id).where(
                Judgment.judge == judge, Judgment.generation1_id == g1, Judgment.generation2_id == g2
            )
        )


@contextmanager
def running_app(store: Store, **exposure: Any) -> Iterator[str]:
    """The arena app served on 127.0.0.1 on a free port, in this process; yields its URL.
    `exposure` holds :class:`arena.webapp.Exposure` fields (users, explore, limits, ...)."""
    from arena.webapp import Exposure, serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = serve(store, Exposure(host="127.0.0.1", port=port, **exposure), block=False)
    try:
        yield served.url
    finally:
        served.close()
