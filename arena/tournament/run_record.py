"""A judging run's record: what it stores about how it was made, and the run it keeps while judging.

The stored configuration is the run's :class:`TournamentConfig` (`asdict`) through an allowlist,
so nothing else (the database URL and its password, local file paths such as `--costs` or a
template file, flags added later) ever reaches the store or a release; the endpoint is kept
without credentials or query. Beside it, the facts the run settled: the template's id and hash,
the judge's settings as sent, the price and the number of matches it set out to judge.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from arena.query.runs import finish_run, start_run
from arena.store import Store
from arena.tournament.config import TournamentConfig
from arena.tournament.plan import Match
from arena.tournament.runner import Limits, Tally, judge_with_client
from foundations.errors import UserError
from judges.judge import JudgeConfig, Outcome

STORED_FIELDS = ("benchmark", "models", "judge_model", "judge_name", "api_key_env", "pairs",
                 "prompts_per_pair", "orders", "concurrency", "budget_usd", "max_judgments", "timeout_s",
                 "repair", "seed")  # fmt: skip
"""The TournamentConfig fields a run record keeps (`base_url` is kept redacted, as `endpoint`)."""


def stored_config(config: TournamentConfig, judge: JudgeConfig, to_judge: int) -> dict[str, Any]:
    """The run record's configuration: the allowlisted fields of `config`, the endpoint without
    credentials, and what the run settled (template, judge settings as sent, price, matches)."""
    from arena.redact import safe_url
    from judges.judge import Judge

    price = judge.price
    kept = {name: value for name, value in asdict(config).items() if name in STORED_FIELDS}
    return {
        **kept,
        "endpoint": safe_url(config.base_url) if config.base_url else None,
        "template_id": judge.template.id,
        "template_hash": judge.template.hash,
        "price_per_1k": None if price is None else {"prompt": price.prompt, "completion": price.completion},
        "judge_settings": Judge(judge, client=None).provenance(),
        "to_judge": to_judge,
    }


def judge_recorded(
    store: Store,
    cfg: JudgeConfig,
    batches: Callable[[], list[Match]],
    total: int,
    *,
    limits: Limits,
    name: str,
    config: dict[str, Any],
    tournament: str | None = None,
    on_result: Callable[[Match, Outcome], None] | None = None,
) -> tuple[int, Tally]:
    """Judge under a `judge` run record (status done, stopped, interrupted or failed), with a
    progress bar of `total` judgments; returns the run's id and what it did. A first Ctrl-C or
    SIGTERM stops sending and ends in KeyboardInterrupt once the calls in flight are stored."""
    from tqdm import tqdm

    from judges.client import api_key
    from judges.judge import FatalJudgeError

    api_key(cfg.client)  # no key: say so before a run is recorded
    with store.session() as session:
        run_id = start_run(session, "judge", name, config, tournament).id
    status = "failed"
    with tqdm(total=total, unit="judgment", desc="judging", file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            tally = asyncio.run(judge_with_client(store, cfg, batches, limits=limits, run_id=run_id,
                                                  progress=bar, on_result=on_result))  # fmt: skip
            if tally.stopped == "interrupted":
                raise KeyboardInterrupt
            status = "stopped" if tally.stopped else "done"
        except (KeyboardInterrupt, asyncio.CancelledError):  # cancelled: a second signal
            status = "interrupted"
            raise KeyboardInterrupt from None
        except FatalJudgeError as err:
            raise UserError(
                f"the judge endpoint refused the call or could not be reached: {err}; check the endpoint "
                "(--base-url), the key and the judge model, then run the same command to resume"
            ) from err
        finally:
            with store.session() as session:
                finish_run(session, run_id, status)
    return run_id, tally
