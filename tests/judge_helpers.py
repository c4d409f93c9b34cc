"""A small arena in a real store for the judge tests, and a scripted judge that reads the answers.

Each answer says "quality N"; the scripted judge explains itself, then puts the better slot on its
last line (QLoRA three-class), so the expected verdict of every match is known in advance."""

from __future__ import annotations

import re
from typing import Any

from arena.query.writes import insert_ignore
from arena.store import Contestant, Generation, Prompt, Store

QUALITY = {"alpha": 3, "beta": 2, "gamma": 1}
MODELS = list(QUALITY)


def fill_store(
    store: Store, prompts: int = 4, benchmark: str = "vicuna", extra: dict[str, str] | None = None
) -> None:
    """`prompts` prompts, each answered by every model in QUALITY; `extra` overrides answer texts
    by "model:prompt-key"."""
    with store.session() as session:
        insert_ignore(session, Prompt, [
            {"benchmark": benchmark, "key": str(i), "category": "generic", "turns": [f"Question {i}?"]}
            for i in range(prompts)
        ])  # fmt: skip
        insert_ignore(session, Contestant, [{"name": m} for m in MODELS])
        pid = {p.key: p.id for p in session.query(Prompt).filter_by(benchmark=benchmark)}
        cid = {c.name: c.id for c in session.query(Contestant)}
        rows = []
        for key, prompt_id in pid.items():
            for model, q in QUALITY.items():
                text = (extra or {}).get(f"{model}:{key}", f"Answer of {model}: quality {q}.")
                rows.append({"prompt_id": prompt_id, "contestant_id": cid[model], "text": text})
        insert_ignore(session, Generation, rows)


def answers(body: dict[str, Any]) -> tuple[str, str]:
    """The two answers as shown to the judge in a QLoRA three-class prompt."""
    user = body["messages"][-1]["content"]
    one = user.split("[The Start of Assistant 1's Answer]\n", 1)[1].split(
        "\n\n[The End of Assistant 1's Answer]"
    )[0]
    two = user.split("[The Start of Assistant 2's Answer]\n", 1)[1].split(
        "\n\n[The End of Assistant 2's Answer]"
    )[0]
    return one, two


def quality(answer: str) -> int:
    found = re.search(r"quality (\d+)", answer)
    return int(found.group(1)) if found else 0


def threeclass_judge(body: dict[str, Any]) -> str:
    """Prefers the higher quality; writes an explanation and then the verdict on the last line."""
    one, two = answers(body)
    q1, q2 = quality(one), quality(two)
    verdict = "1" if q1 > q2 else "2" if q2 > q1 else "3"
    return f"Assistant 1 scores {q1} and Assistant 2 scores {q2}.\n\n{verdict}"


def expected_verdict(model_1: str, model_2: str) -> str:
    q1, q2 = QUALITY[model_1], QUALITY[model_2]
    return "1" if q1 > q2 else "2" if q2 > q1 else "tie"
