"""What one judging run (`guanaco judge`) is asked to do: its typed config, from flags or a YAML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from foundations.configs import check_choices, flag
from foundations.errors import UserError

TEMPLATE_HELP = (
    "qlora-vicuna | qlora-oa | relative | mt-bench-pair | mt-bench-single | mt-bench-pair-multi-turn | "
    "mt-bench-single-multi-turn (MT-bench turn 2) | FILE.yaml (default: the benchmark's own: qlora-vicuna, "
    "qlora-oa, mt-bench-pair)"
)


@dataclass
class TournamentConfig:
    """A tournament: which contestants, on which benchmark, judged by whom, with which template,
    which pairs and orders, within which limits. Field order is the flags' order in `--help`."""

    benchmark: str = field(metadata=flag("vicuna, oa, mt-bench, or any benchmark in the store"))
    models: list[str] = field(metadata=flag("comma-separated contestant names"))
    judge_model: str = field(default="gpt-4", metadata=flag("the judge model as the endpoint names it"))
    judge_name: str | None = field(
        default=None, metadata=flag("name stored with each judgment (default: --judge-model)")
    )
    base_url: str | None = field(
        default=None, metadata=flag("OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata=flag("environment variable holding the API key")
    )
    template: str | None = field(default=None, metadata=flag(TEMPLATE_HELP))
    turns: Literal["all", "1", "2"] = field(default="all", metadata=flag(
        "MT-bench: judge turn 1, turn 2 (FastChat's multi-turn templates) or all (default); "
        "single-turn templates judge turn 1"))  # fmt: skip
    pairs: str = field(default="all", metadata=flag("all | baseline:NAME | active"))
    prompts_per_pair: int | None = field(
        default=None, metadata=flag("judge each pair on N seeded-random prompts")
    )
    orders: Literal["both", "one"] = field(default="both", metadata=flag("judge both slot orders or one"))
    concurrency: int = field(default=32, metadata=flag("judge calls in flight"))
    budget_usd: float | None = field(default=None, metadata=flag(
        "stop before this tournament (same benchmark, models, judge and template) has spent more than "
        "this, counting earlier runs"))  # fmt: skip
    max_judgments: int | None = field(
        default=None, metadata=flag("stop after sending this many judgments in this run")
    )
    costs: str | None = field(
        default=None, metadata=flag("JSON price table overriding judges/costs.json (USD per 1k tokens)")
    )
    temperature: float | None = field(default=None, metadata=flag(
        "judge sampling temperature (default: the template source's: QLoRA 0.2, FastChat 0)"))  # fmt: skip
    max_tokens: int | None = field(default=None, metadata=flag(
        "judge output limit per call (default: the template source's: QLoRA 1024, FastChat 2048)"))  # fmt: skip
    timeout_s: float = field(
        default=120.0, metadata=flag("seconds for a call's whole reply before retrying", flag="--timeout")
    )
    repair: bool = field(
        default=False, metadata=flag("re-ask once when a verdict cannot be read", action="store_true")
    )
    seed: int = field(default=0, metadata=flag("for prompt sampling, slot orders and the judge"))

    def __post_init__(self) -> None:
        check_choices(self)
        if len(self.models) < 2:
            raise UserError("--models needs at least two contestants, comma-separated")
        if self.concurrency < 1:
            raise UserError("--concurrency must be at least 1")
        self.judge_name = self.judge_name or self.judge_model
