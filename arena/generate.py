"""The generation runner: every contestant answers every prompt of a benchmark, once.

Only missing (prompt, contestant) pairs are generated, and each batch is committed as it finishes
(`insert_ignore` on the generation's unique key), so a killed run resumes where it stopped and a
re-run stores nothing twice. Every generation keeps its provenance: the exact prompt sent, the
sampling parameters and seed, the backend, the model and adapter identity, token counts and time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from arena.backends import Backend, GenerateParams, Request, Result, load_backend
from arena.models import contestants
from arena.prompting import conversation
from arena.query.generations import answered_prompt_ids
from arena.query.prompts import benchmark_prompts as stored_prompts
from arena.query.runs import finish_run, start_run
from arena.query.writes import insert_ignore
from arena.store import Contestant, Generation, Prompt, Store
from foundations.errors import UserError

log = logging.getLogger(__name__)

REPORT_COLUMNS = ["model", "backend", "prompts", "generated", "skipped", "failed", "prompt_tokens",
                  "completion_tokens", "seconds", "tokens_per_s"]  # fmt: skip


def benchmark_prompts(store: Store, benchmark: str, limit: int | None = None) -> list[Prompt]:
    """The benchmark's prompts in a stable order (first `limit`); none is a clear error."""
    with store.session() as session:
        prompts = stored_prompts(session, benchmark, limit)
    if not prompts:
        raise UserError(
            f"benchmark {benchmark!r} has no prompts in the store: use vicuna, oa, mt-bench or sample "
            "(loaded automatically), or give --prompts FILE"
        )
    for prompt in prompts:
        if not prompt.turns or not all(isinstance(t, str) and t.strip() for t in prompt.turns):
            raise UserError(f"prompt {benchmark}/{prompt.key} (source {prompt.source}): field turns is empty")
    return prompts


def generate(
    store: Store,
    benchmark: str,
    models: Sequence[str],
    backend: str,
    params: GenerateParams | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Answer the missing prompts of `benchmark` with each of `models`; one report row per model."""
    params = params or GenerateParams()
    prompts = benchmark_prompts(store, benchmark, limit)
    with store.session() as session:
        entrants = contestants(session, list(models))
        run = start_run(session, "generate", benchmark,
                        {"models": list(models), "backend": backend, "limit": limit,
                         **params.sampling(), "seed": params.seed, "batch_size": params.batch_size})  # fmt: skip
    todo = {c.name: _missing(store, c, prompts) for c in entrants}
    rows, status = [], "failed"
    try:
        with tqdm(total=sum(map(len, todo.values())), unit="prompt", desc="generate") as bar:
            for contestant in entrants:
                rows.append(_run_one(store, contestant, prompts, todo[contestant.name], backend, params,
                                     run.id, bar))  # fmt: skip
        status = "done"
    finally:
        with store.session() as session:
            finish_run(session, run.id, status)
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def _missing(store: Store, contestant: Contestant, prompts: list[Prompt]) -> list[Prompt]:
    with store.session() as session:
        done = answered_prompt_ids(session, contestant.id)
    return [p for p in prompts if p.id not in done]


def _run_one(
    store: Store,
    contestant: Contestant,
    prompts: list[Prompt],
    todo: list[Prompt],
    backend_name: str,
    params: GenerateParams,
    run_id: int,
    bar: tqdm,
) -> dict[str, Any]:
    """Generate one contestant's missing answers, committing batch by batch. `seconds` is wall time."""
    totals = {"prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}
    name = backend_name if contestant.kind != "api" else "openai"
    failed: list[str] = []
    if todo:
        bar.set_description(f"generate {contestant.name}")
        backend = load_backend(backend_name, contestant, params)
        name = backend.name
        try:
            for start in range(0, len(todo), params.batch_size):
                batch = todo[start : start + params.batch_size]
                began = time.perf_counter()
                answers = answer_turns(backend, batch)
                totals["seconds"] += time.perf_counter() - began
                rows = [_row(p, turns, contestant, backend, params, run_id)
                        for p, turns in zip(batch, answers, strict=True) if _complete(p, turns)]  # fmt: skip
                failed += [f"{p.key}: {_error(turns)}" for p, turns in zip(batch, answers, strict=True)
                           if not _complete(p, turns)]  # fmt: skip
                with store.session() as session:
                    insert_ignore(session, Generation, rows)
                for row in rows:
                    for key in ("prompt_tokens", "completion_tokens"):
                        totals[key] += row[key] or 0
                bar.update(len(batch))
                bar.set_postfix(tok_s=f"{totals['completion_tokens'] / max(totals['seconds'], 1e-9):.1f}")
        finally:
            backend.close()
    if failed:
        log.warning("%s: %d prompt(s) got no answer and will be retried by the next run; first: %s",
                    contestant.name, len(failed), failed[0])  # fmt: skip
    rate = totals["completion_tokens"] / totals["seconds"] if totals["seconds"] else None
    return {"model": contestant.name, "backend": name, "prompts": len(prompts),
            "generated": len(todo) - len(failed), "skipped": len(prompts) - len(todo), "failed": len(failed),
            **totals, "tokens_per_s": rate}  # fmt: skip


def _complete(prompt: Prompt, turns: list[Result]) -> bool:
    return len(turns) == len(prompt.turns) and all(t.error is None for t in turns)


def _error(turns: list[Result]) -> str:
    return next((t.error for t in turns if t.error), "unanswered turn")


def answer_turns(backend: Backend, prompts: list[Prompt]) -> list[list[Result]]:
    """Each prompt's answers, turn by turn; a later turn's conversation includes the earlier answers.

    All prompts' turn k go to the backend as one batch; a prompt whose turn failed stops there."""
    answers: list[list[Result]] = [[] for _ in prompts]
    for turn in range(max(len(p.turns) for p in prompts)):
        pending = [i for i, p in enumerate(prompts)
                   if turn < len(p.turns) and all(r.error is None for r in answers[i])]  # fmt: skip
        if not pending:
            break
        requests = [Request(conversation(prompts[i].context or [], prompts[i].turns,
                                         [r.text for r in answers[i]])) for i in pending]  # fmt: skip
        for i, result in zip(pending, backend.generate(requests), strict=True):
            answers[i].append(result)
    return answers


def _row(
    prompt: Prompt,
    turns: list[Result],
    contestant: Contestant,
    backend: Backend,
    params: GenerateParams,
    run_id: int,
) -> dict[str, Any]:
    first = turns[0]
    meta: dict[str, Any] = {"model": backend.identity()}
    if len(turns) > 1:
        meta.update(turn_raw_texts=[t.raw for t in turns], turn_prompts_sent=[t.prompt_sent for t in turns])
    for key in ("attempts", "served_model"):
        if key in first.meta:
            meta[key] = [t.meta[key] for t in turns]
    return {
        "prompt_id": prompt.id, "contestant_id": contestant.id, "text": first.text,
        "turn_texts": [t.text for t in turns], "raw_text": first.raw, "prompt_sent": first.prompt_sent,
        "params": backend.sampling(), "seed": params.seed, "backend": backend.name,
        "prompt_tokens": _sum(t.prompt_tokens for t in turns),
        "completion_tokens": _sum(t.completion_tokens for t in turns),
        "seconds": sum(t.seconds for t in turns), "run_id": run_id, "meta": meta,
    }  # fmt: skip


def _sum(values: Any) -> int | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)
