"""Contestants: the registry of local and API models in the store (the embedded SmolLM2 model
itself is :mod:`foundations.smollm2`).

A contestant records *what* produces its answers (a base model, an optional LoRA adapter, a
quantization, or an API model and the names of the environment variables that reach it), never a
secret: API keys are read from the environment at generation time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from sqlalchemy.orm import Session

from arena.prompting import FORMATS
from arena.query.contestants import all_contestants, contestant_names, contestants_named, upsert_contestant
from arena.store import Contestant
from foundations.errors import UserError
from foundations.smollm2 import SMOLLM2, ensure_smollm2

QUANTIZATIONS = {4: "nf4", 8: "int8", 16: None}


@dataclass(frozen=True)
class ModelSpec:
    """What a local contestant loads: enough to rebuild it, and its identity for provenance."""

    name: str
    base_model: str
    adapter: str | None = None
    quantization: str | None = None

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "base_model": self.base_model, "adapter": self.adapter,
                "quantization": self.quantization}  # fmt: skip


def register(session: Session, name: str, **fields: Any) -> Contestant:
    """Add contestant `name`, or update its fields if it exists (re-adding corrects a mistake)."""
    if not name or not name.strip():
        raise UserError("a contestant needs a non-empty name")
    if any(key.lower().endswith("key") for key in fields.get("meta", {})):
        raise UserError("API keys are never stored: pass the name of an environment variable instead")
    return upsert_contestant(session, name, **fields)


def add_local(
    session: Session,
    name: str,
    base: str | None = None,
    adapter: str | None = None,
    bits: int = 16,
    prompt_format: str = "auto",
) -> Contestant:
    """A transformers/vLLM contestant: a hub id or local path, optionally with a LoRA adapter.

    Given only a local adapter folder, the base is read from its `adapter_config.json`."""
    if bits not in QUANTIZATIONS:
        raise UserError(f"--bits must be 4, 8 or 16, not {bits}")
    if prompt_format not in FORMATS:
        raise UserError(f"unknown prompt format {prompt_format!r}: use one of {', '.join(FORMATS)}")
    if base is None:
        if adapter is None:
            raise UserError("give --base (a hub id or local path), --adapter DIR, or --api")
        base = adapter_base(adapter)
    if base == SMOLLM2:  # the embedded model by its short name
        base = str(ensure_smollm2())
    base, adapter = _absolute(base), _absolute(adapter)  # a contestant must load from any directory
    return register(session, name, kind="local", base_model=base, adapter=adapter,
                    quantization=QUANTIZATIONS[bits], api_model=None, meta={"prompt_format": prompt_format})  # fmt: skip


def add_low_bit(session: Session, name: str, folder: str, prompt_format: str = "auto") -> Contestant:
    """A group-wise INT4/3/2 model written by `guanaco merge` (a folded QA-LoRA run, or a QLoRA run
    merged then quantized); its quantization is recorded as `int<bits>-g<group size>`."""
    from trainer.qalora_format import FormatError, label, read_meta

    if prompt_format not in FORMATS:
        raise UserError(f"unknown prompt format {prompt_format!r}: use one of {', '.join(FORMATS)}")
    try:
        meta = read_meta(Path(folder))
    except FormatError as err:
        raise UserError(str(err)) from err
    return register(session, name, kind="local", base_model=str(Path(folder).resolve()), adapter=None,
                    quantization=label(meta), api_model=None,
                    meta={"prompt_format": prompt_format, "low_bit_source": meta.get("source")})  # fmt: skip


def is_low_bit(quantization: str | None) -> bool:
    """Whether a contestant's quantization names the project's group-wise integer format
    (`int4-g32`), not bitsandbytes' `int8` base that `--bits 8` loads."""
    return bool(quantization) and re.fullmatch(r"int\d+-g\d+", quantization) is not None


def _absolute(model: str | None) -> str | None:
    """A local folder as an absolute path; a hub id (no such folder here) as given."""
    return str(Path(model).resolve()) if model and Path(model).exists() else model


def adapter_base(adapter: str) -> str:
    """The base model a local PEFT adapter was trained on (`base_model_name_or_path`)."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise UserError(f"{config} not found: give --base with a hub adapter, or a local adapter folder")
    try:
        base = json.loads(config.read_text()).get("base_model_name_or_path")
    except json.JSONDecodeError as err:
        raise UserError(f"{config}, line {err.lineno}: not valid JSON ({err.msg})") from err
    if not base:
        raise UserError(f"{config}: field base_model_name_or_path is missing; give --base")
    return base


def add_api(
    session: Session,
    name: str,
    model: str,
    base_url: str | None = None,
    key_env: str = "OPENAI_API_KEY",
    base_url_env: str = "OPENAI_BASE_URL",
) -> Contestant:
    """An OpenAI-compatible contestant. Only the *names* of the key and URL variables are stored."""
    meta = {"api_key_env": key_env, "base_url_env": base_url_env}
    if base_url:
        if urlsplit(base_url).username is not None:
            raise UserError(
                f"--base-url for {name!r} carries a user name or password: credentials are never stored. "
                f"Give the bare endpoint and put the key in ${key_env} (or name another with --api-key-env)"
            )
        meta["base_url"] = base_url
    return register(session, name, kind="api", api_model=model, base_model=None, adapter=None,
                    quantization=None, meta=meta)  # fmt: skip


def pull_smollm2(session: Session) -> Contestant:
    """Convert (once) and register the embedded model as contestant `smollm2`."""
    return add_local(session, SMOLLM2, base=str(ensure_smollm2()))


def contestants(session: Session, names: list[str]) -> list[Contestant]:
    """The named contestants in the order given; unknown names are one clear error."""
    found = contestants_named(session, names)
    missing = [n for n in names if n not in found]
    if missing:
        known = ", ".join(contestant_names(session)) or "none yet"
        raise UserError(
            f"unknown model(s): {', '.join(missing)} (registered: {known}); "
            "add one with `guanaco models add` or `guanaco models pull smollm2`"
        )
    return [found[n] for n in names]


def spec(contestant: Contestant) -> ModelSpec:
    """The loadable description of a local contestant."""
    if contestant.kind != "local" or not contestant.base_model:
        raise UserError(f"contestant {contestant.name!r} is kind {contestant.kind!r}, not a local model")
    return ModelSpec(contestant.name, contestant.base_model, contestant.adapter, contestant.quantization)


def contestants_frame(session: Session) -> pd.DataFrame:
    """All contestants, one row each, for `guanaco models list`."""
    rows = [
        {"name": c.name, "kind": c.kind, "base_model": c.base_model, "adapter": c.adapter,
         "quantization": c.quantization, "api_model": c.api_model,
         "base_url": (c.meta or {}).get("base_url") or (c.meta or {}).get("base_url_env")}
        for c in all_contestants(session)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["name", "kind", "base_model", "adapter", "quantization", "api_model",
                                       "base_url"])  # fmt: skip
