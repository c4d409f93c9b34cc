"""The OpenAI-compatible judge: one call per comparison (two for single-answer grading), the verdict
read strictly, the cost worked out from the usage the server reports and a price table that is data.

A failed attempt may still have been billed (a timeout, a dropped connection), so each one is
charged at its call's upper-bound estimate: the budget errs on the side of spending less.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judges.client import ChatClient, ChatError, ClientConfig
from judges.parse import REPAIR_PROMPTS, Parsed, parse, scored
from judges.templates import Template, Turn
from judges.tokens import PER_MESSAGE, prompt_tokens

COSTS_FILE = Path(__file__).with_name("costs.json")
COSTS_ENV = "GUANACO_JUDGE_COSTS"
FATAL_ERRORS = ("AuthenticationError", "PermissionDeniedError", "NotFoundError", "APIConnectionError")
"""Errors that will fail every call the same way: the run stops instead of storing them all (a
connection still refused after every retry: the endpoint is down or the URL wrong)."""


@dataclass(frozen=True)
class Price:
    """USD per 1,000 tokens."""

    prompt: float
    completion: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1000


def load_prices(path: str | Path | None = None) -> dict[str, Price]:
    """The built-in price table, updated by `GUANACO_JUDGE_COSTS` and then by `path` if given."""
    table: dict[str, Price] = {}
    for source in (COSTS_FILE, os.environ.get(COSTS_ENV), path):
        if not source:
            continue
        source = Path(source)
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
            for model, entry in data.items():
                if not model.startswith("_"):
                    table[model] = Price(float(entry["prompt"]), float(entry["completion"]))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(
                f"{source}: not a price table ({err}); expected {{MODEL: {{prompt: USD_PER_1K, completion: USD_PER_1K}}}}"
            ) from err
    return table


def price_for(model: str, prices: dict[str, Price]) -> Price | None:
    """The price of the longest model-name prefix in the table ("gpt-4-0613" -> "gpt-4")."""
    matches = [name for name in prices if model == name or model.startswith(name + "-")]
    return prices[max(matches, key=len)] if matches else None


@dataclass(frozen=True)
class Case:
    """What one judgment compares: slot 1's answer is shown first. For a later turn (MT-bench's
    second), `question`, the answers and `reference` are that turn's and `earlier` holds the turns
    before it, each slot's answers from the same conversation."""

    question: str
    answer_1: str
    answer_2: str
    category: str | None = None
    reference: str | None = None
    earlier: tuple[Turn, ...] = ()

    @property
    def answers(self) -> list[str]:
        """Every answer text shown to the judge, in any turn: what a verdict must not be read from."""
        return [text for turn in (*self.earlier, self) for text in (turn.answer_1, turn.answer_2)]

    @property
    def has_references(self) -> bool:
        return all(turn.reference is not None for turn in (*self.earlier, self))


@dataclass(frozen=True)
class JudgeConfig:
    client: ClientConfig
    template: Template
    name: str
    """Stored as the judgment's judge, e.g. "gpt-4"."""
    temperature: float | None = None
    """None: the template source's setting (QLoRA 0.2, FastChat 0), see `Template.settings`."""
    max_tokens: int | None = None
    seed: int | None = 0
    repair: bool = False
    price: Price | None = None


@dataclass
class Outcome:
    """One judgment's result, ready to store."""

    status: str
    verdict: str | None = None
    score1: float | None = None
    score2: float | None = None
    raw: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    seconds: float = 0.0
    failed_usd: float = 0.0
    """Failed attempts, each charged at its call's estimate (part of `cost_usd`)."""
    meta: dict[str, Any] = field(default_factory=dict)


class FatalJudgeError(Exception):
    """The endpoint refuses every call (bad key, unknown model): stop the run."""


class Judge:
    def __init__(self, cfg: JudgeConfig, client: ChatClient) -> None:
        self.cfg = cfg
        self.client = client
        settings = cfg.template.settings
        self.temperature = settings.temperature if cfg.temperature is None else cfg.temperature
        self.max_tokens = settings.max_tokens if cfg.max_tokens is None else cfg.max_tokens

    def provenance(self) -> dict[str, Any]:
        """The settings every judgment records, and where their defaults came from."""
        settings = self.cfg.template.settings
        return {"temperature": self.temperature, "max_tokens": self.max_tokens,
                "question_form": settings.question_form, "turn": self.cfg.template.turn,
                "defaults_from": settings.origin}  # fmt: skip

    def calls(self, case: Case) -> list[list[dict[str, str]]]:
        """The messages of each call a case takes: one, or one per answer for single grading (the
        graded answer in slot 1, with its own earlier turns)."""
        t = self.cfg.template
        kw = {"category": case.category, "reference": case.reference}
        if t.single:
            second = tuple(Turn(e.question, e.answer_2, "", e.reference) for e in case.earlier)
            return [
                t.messages(case.question, case.answer_1, earlier=case.earlier, **kw),
                t.messages(case.question, case.answer_2, earlier=second, **kw),
            ]
        return [t.messages(case.question, case.answer_1, case.answer_2, earlier=case.earlier, **kw)]

    def estimate(self, case: Case) -> tuple[int, int, float]:
        """(prompt tokens, at most this many completion tokens, at most this cost) before calling:
        every call, plus its repair follow-up when `repair` is on."""
        prompt = completion = 0
        for messages in self.calls(case):
            tokens, most, _ = self.call_bound(messages)
            prompt, completion = prompt + tokens, completion + most
            if self.cfg.repair:  # the follow-up resends the call, its reply and the repair request
                request = [{"role": "user", "content": REPAIR_PROMPTS[self.cfg.template.output]}]
                repair = prompt_tokens(self.cfg.client.model, request) + PER_MESSAGE
                prompt, completion = prompt + tokens + most + repair, completion + most
        cost = self.cfg.price.cost(prompt, completion) if self.cfg.price else 0.0
        return prompt, completion, cost

    def call_bound(self, messages: list[dict[str, str]]) -> tuple[int, int, float]:
        """(prompt tokens, at most this many completion tokens, at most this cost) of one call."""
        prompt = prompt_tokens(self.cfg.client.model, messages)
        cost = self.cfg.price.cost(prompt, self.max_tokens) if self.cfg.price else 0.0
        return prompt, self.max_tokens, cost

    async def judge(self, case: Case, on_failed_attempt: Callable[[float], bool] | None = None) -> Outcome:
        """Ask, read the verdict, and account for it; errors become `error` outcomes.

        Each failed attempt is charged at its call's bound and reported to `on_failed_attempt`,
        which answers whether the budget leaves room for another."""
        variant = self.cfg.template.variant(case.category, case.has_references)
        meta = {**self.provenance(), "prompt_name": variant.name or self.cfg.template.id}
        outcome = Outcome(status="ok", prompt_tokens=0, completion_tokens=0, meta=meta)
        parts: list[Parsed] = []
        raws: list[str] = []
        try:
            for messages in self.calls(case):
                parsed, raw = await self._ask(messages, case.answers, outcome, on_failed_attempt)
                parts.append(parsed)
                raws.append(raw)
        except ChatError as err:
            cause = type(err.__cause__).__name__
            if cause in FATAL_ERRORS:
                raise FatalJudgeError(str(err)) from err
            outcome.status, outcome.raw = "error", "\n\n".join([*raws, f"[error] {err}"])
            outcome.meta["attempts"] = err.attempts
            self._cost(outcome)
            return outcome
        final = self._combine(parts)
        outcome.status, outcome.verdict = final.status, final.verdict
        outcome.score1, outcome.score2 = final.score1, final.score2
        outcome.raw = (
            raws[0] if len(raws) == 1 else "\n\n".join(f"[answer {i}]\n{r}" for i, r in enumerate(raws, 1))
        )
        if final.status != "ok":
            outcome.meta["unparsed_reason"] = final.reason
        self._cost(outcome)
        return outcome

    async def _ask(
        self,
        messages: list[dict[str, str]],
        answers: list[str],
        outcome: Outcome,
        on_failed_attempt: Callable[[float], bool] | None,
    ) -> tuple[Parsed, str]:
        result = await self._chat(messages, outcome, on_failed_attempt)
        parsed = parse(result, self.cfg.template.output, answers)
        if parsed.status == "ok" or not self.cfg.repair:
            return parsed, result
        follow_up = [
            *messages,
            {"role": "assistant", "content": result},
            {"role": "user", "content": REPAIR_PROMPTS[self.cfg.template.output]},
        ]
        repaired = await self._chat(follow_up, outcome, on_failed_attempt)
        outcome.meta["repaired"] = True
        return parse(repaired, self.cfg.template.output, answers), f"{result}\n\n[repair]\n{repaired}"

    async def _chat(
        self,
        messages: list[dict[str, str]],
        outcome: Outcome,
        on_failed_attempt: Callable[[float], bool] | None,
    ) -> str:
        bound = self.call_bound(messages)[2]

        def failed(_error: BaseException) -> bool:
            outcome.meta["failed_attempts"] = outcome.meta.get("failed_attempts", 0) + 1
            outcome.failed_usd += bound
            return on_failed_attempt(bound) if on_failed_attempt else True

        result = await self.client.chat(
            messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.cfg.seed,
            on_failure=failed,
        )
        outcome.seconds += result.seconds
        outcome.prompt_tokens = _add(outcome.prompt_tokens, result.prompt_tokens)
        outcome.completion_tokens = _add(outcome.completion_tokens, result.completion_tokens)
        return result.text

    def _combine(self, parts: list[Parsed]) -> Parsed:
        if not self.cfg.template.single:
            return parts[0]
        bad = [p for p in parts if p.status != "ok"]
        return bad[0] if bad else scored(parts[0].score1, parts[1].score1)

    def _cost(self, outcome: Outcome) -> None:
        """The answered calls' cost from the usage reported, plus the failed attempts' charge; None
        (charged at the estimate by the caller) when the server reported no usage."""
        if self.cfg.price and outcome.prompt_tokens is not None and outcome.completion_tokens is not None:
            answered = self.cfg.price.cost(outcome.prompt_tokens, outcome.completion_tokens)
            outcome.cost_usd = answered + outcome.failed_usd


def _add(total: int | None, more: int | None) -> int | None:
    return None if total is None or more is None else total + more
