"""Typed workflow configurations: one dataclass per workflow, made from flags, a YAML file, or both.

Every workflow (training, generation, judging, the sweep) is described by one dataclass, and
its command builds it the same way: defaults < `--config FILE.yaml` < the flags given. The
dataclass is the only description. A field's type hint makes its flag (`lora_r: int` ->
`--lora-r`, a `Literal` -> choices, `bool` -> `--x/--no-x`, `list[str]` -> a comma-separated
value) and checks its value; its `metadata` (:func:`flag`) carries the help text and, where the
command line spells it differently, the flag's name or argparse settings. Every flag defaults to
None, so the flags given can be told from the rest and override the file.

Values from a file or a mapping are checked by pydantic (`TypeAdapter` of each field's hint; a
maintained library already installed with Gradio): a wrong type, or a value outside a `Literal`,
is refused with one line naming the file, the line and the field, and the dataclass's own
`__post_init__` checks run as usual. transformers' `HfArgumentParser` does the same translation
of dataclass fields, but its conventions would change this project's command line (it adds
`--lora_r` beside `--lora-r`, fills every flag with the field's default so a flag cannot override
a file, makes bool flags take a value and lists space-separated), and its `parse_dict` /
`parse_yaml_file` hand values to the dataclass unchecked (`lora_r: abc` would train with a
string); so the flags are made here, in one place for every workflow.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from foundations.errors import UserError

Config = TypeVar("Config")


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message names the file (or flag) and the field."""


def flag(help: str | None = None, **settings: Any) -> dict[str, Any]:
    """A field's `metadata`: its flag's help text, and argparse settings that differ from what
    the field's type gives (`flag="--timeout"` for another name, `metavar`, `action`, `choices`)."""
    return {"help": help, **settings}


# ---------------------------------------------------------------- field types


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_inner(hint: Any) -> Any:
    """`X | None` -> X; other hints unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def literal_choices(hint: Any) -> tuple[Any, ...]:
    """The allowed values of a `Literal[...]` (or `Literal[...] | None`) hint; () for other hints."""
    hint = _optional_inner(hint)
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


def check_choices(config: Any) -> None:
    """Refuse a `Literal` field holding another value (for a dataclass made directly in Python,
    where no file or flag was checked): called from `__post_init__`."""
    for f in dataclasses.fields(config):
        choices = literal_choices(_hints(type(config))[f.name])
        value = getattr(config, f.name)
        if choices and value is not None and value not in choices:
            raise ConfigError(f"field {f.name}: {value!r} is not one of {', '.join(map(str, choices))}")


def comma_list(text: str) -> list[str]:
    """`"a, b,,c"` -> ["a", "b", "c"]: how a list field is written on the command line."""
    return [part.strip() for part in text.split(",") if part.strip()]


# ---------------------------------------------------------------- flags


def add_arguments(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    names: Sequence[str] | None = None,
    *,
    skip: Sequence[str] = (),
    show_defaults: bool = False,
) -> None:
    """One flag per field of `cls` (or per field in `names`, in that order), each defaulting to
    None so only the flags given count. `show_defaults`: a field without help text says its default."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for name in names if names is not None else list(fields):
        if name not in skip:
            _add_flag(parser, fields[name], _hints(cls)[name], show_defaults)


def _add_flag(parser: Any, f: dataclasses.Field, hint: Any, show_defaults: bool) -> None:
    settings = dict(f.metadata)
    plain = "--" + f.name.replace("_", "-")
    option = settings.pop("flag", plain)
    text = settings.pop("help", None)
    inner = _optional_inner(hint)
    kwargs: dict[str, Any] = {"dest": f.name, "default": None}
    if inner is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(inner) is list:
        kwargs["type"] = comma_list
    elif literal_choices(hint):
        choices = literal_choices(hint)
        kwargs.update(type=type(choices[0]), choices=choices)
    else:
        kwargs["type"] = inner
    if text is None and show_defaults and f.default is not dataclasses.MISSING:
        text = f"(default {f.default!r})"
        if typing.get_origin(inner) is list:
            text = "comma-separated " + text
    kwargs["help"] = text
    kwargs.update(settings)
    if kwargs.get("action") in ("store_true", "store_false"):
        kwargs.pop("type", None)
    elif option != plain and "metavar" not in kwargs:  # a renamed flag shows its name: --timeout TIMEOUT
        kwargs["metavar"] = option.lstrip("-").replace("-", "_").upper()
    parser.add_argument(option, **kwargs)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` given on the command line (flags left out are None)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def flag_value(cls: type, name: str, text: str) -> Any:
    """`text` read as field `name`'s flag reads it (`"8"` -> 8 for an int field); ConfigError if
    it cannot be. For values written as flags elsewhere (the sweep's `--grid lora_r=8,16`)."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    add_arguments(parser, cls, [name])
    try:
        parsed = parser.parse_args([f"--{name.replace('_', '-')}", text])
    except (argparse.ArgumentError, SystemExit) as err:
        raise ConfigError(f"{name}={text!r}: not a valid value for this field") from err
    return getattr(parsed, name)


# ---------------------------------------------------------------- files and mappings


def read_yaml(path: Path | str, cls: type) -> dict[str, Any]:
    """A YAML mapping of `cls`'s fields, as written; an unknown field is an error naming the file
    and line. Values are checked when the config is built (:func:`build`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]  # one line, not PyYAML's excerpt
        raise ConfigError(
            f"{path}{f', line {mark.line + 1}' if mark else ''}: not valid YAML ({problem})"
        ) from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of field: value")
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"{where(path, key)}: unknown field {key!r}; fields: {', '.join(sorted(known))}"
            )
    return raw


def where(path: Path | str, key: str) -> str:
    """`FILE, line N` of the line setting top-level `key` (`FILE` when not found)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    line = next((i + 1 for i, text in enumerate(lines) if text.startswith(f"{key}:")), None)
    return f"{path}, line {line}" if line else str(path)


@functools.cache
def _adapter(hint: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(hint)


def check_value(cls: type, name: str, value: Any) -> Any:
    """`value` as field `name` of `cls` holds it (`"2e-4"` -> 0.0002 for a float), or a
    ConfigError naming the field."""
    from pydantic import ValidationError

    try:
        return _adapter(_hints(cls)[name]).validate_python(value)
    except ValidationError as err:
        problem = err.errors()[0]["msg"]
        raise ConfigError(f"field {name}: {problem} (got {value!r})") from None


def build(
    cls: type[Config],
    values: Mapping[str, Any],
    file: Path | str | None = None,
    from_file: Sequence[str] = (),
    command: str | None = None,
) -> Config:
    """`cls(**values)` with every value checked against its field's type; an error names the
    field and, for the values in `from_file` (the keys read from `file`), the file and line.
    `command` (`guanaco judge`) is named in the error for a field left unset, with its help."""
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    typed = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown field {key!r}; fields: {', '.join(sorted(known))}")
        try:
            typed[key] = check_value(cls, key, value)
        except ConfigError as err:
            if key not in from_file:
                raise
            raise ConfigError(f"{where(file, key)}: {err}") from None
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in typed
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # fmt: skip
    if missing:
        needed = ", ".join("--" + name.replace("_", "-") for name in missing)
        help = f" (see `{command} --help`)" if command else ""
        raise ConfigError(f"{needed} required: give the flag or set the field in the --config file{help}")
    return cls(**typed)


def from_args(
    cls: type[Config],
    args: argparse.Namespace,
    config_file: Path | str | None = None,
    command: str | None = None,
) -> Config:
    """The config a command line asks for: defaults < `config_file` < the flags given."""
    values = read_yaml(config_file, cls) if config_file is not None else {}
    from_file = list(values)
    flags = given(args, cls)
    values.update(flags)
    return build(cls, values, config_file, [k for k in from_file if k not in flags], command)
