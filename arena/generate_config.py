"""What one generation run (`guanaco generate`) is asked to do: its typed config, from flags or a YAML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from arena.backends import BACKENDS, GenerateParams
from foundations.configs import flag
from foundations.errors import UserError

DEFAULTS = GenerateParams()


@dataclass
class GenerateConfig:
    """Which contestants answer which benchmark, with which engine and sampling. Defaults follow the
    QLoRA paper (:class:`GenerateParams`)."""

    benchmark: str = field(metadata=flag("vicuna, oa, mt-bench, sample, or any benchmark in the store"))
    models: list[str] = field(metadata=flag("comma-separated contestant names (see `guanaco models list`)"))
    prompts: Path | None = field(
        default=None, metadata=flag("load the benchmark's prompts from this file first")
    )
    backend: str = field(default="transformers", metadata=flag(
        "engine for local models (API models always use openai)", choices=BACKENDS))  # fmt: skip
    batch_size: int = DEFAULTS.batch_size
    max_new_tokens: int = DEFAULTS.max_new_tokens
    temperature: float = field(default=DEFAULTS.temperature, metadata=flag("0 = greedy"))
    top_p: float = DEFAULTS.top_p
    seed: int = DEFAULTS.seed
    concurrency: int = field(default=DEFAULTS.concurrency, metadata=flag("parallel API calls"))
    limit: int | None = field(default=None, metadata=flag("only the first N prompts"))

    def __post_init__(self) -> None:
        if not self.models:
            raise UserError("--models needs at least one contestant name (comma-separated)")
        if self.backend not in BACKENDS:
            raise UserError(f"field backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.batch_size < 1 or self.max_new_tokens < 1 or (self.limit is not None and self.limit < 1):
            raise UserError("--batch-size, --max-new-tokens and --limit must be at least 1")

    def params(self) -> GenerateParams:
        return GenerateParams(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                              seed=self.seed, batch_size=self.batch_size, concurrency=self.concurrency)  # fmt: skip
