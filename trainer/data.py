"""Training data sources: local files and folders, the hub, and the train/validation split.

Sources: raw OASST1 message trees (the hub's `OpenAssistant/oasst1` or local JSONL/Parquet of its
rows), the prebuilt `timdettmers/openassistant-guanaco` text (the paper's data), or any file,
folder or hub dataset in one of `trainer.formats`' formats. A broken file stops with its name,
line and field; what happens to each record is counted in the formats' :class:`DataReport`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foundations.paths import DATA_DIR
from trainer.formats import CONVERTERS, FORMATS, Conversation, DataError, DataReport, Record, guess_format

HUB_SOURCES = {
    "oasst1": ("OpenAssistant/oasst1", "oasst1"),
    "guanaco": ("timdettmers/openassistant-guanaco", "guanaco-text"),
}
SAMPLE = DATA_DIR / "samples" / "oasst1_sample.jsonl"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
VALIDATION_NAMES = {"validation", "valid", "eval", "test"}
FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def read_records(path: Path) -> list[Record]:
    """Rows of a JSONL, JSON-array or Parquet file, each tagged with its file and line (or row)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    if path.suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        return [Record(f"{path}:row {i + 1}", _plain(row)) for i, row in enumerate(frame.to_dict("records"))]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
        return [_record(f"{path}:item {i + 1}", row) for i, row in enumerate(rows)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not valid JSON ({err.msg}, column {err.colno})") from err
        records.append(_record(f"{path}:{number}", row))
    return records


def _record(where: str, row: Any) -> Record:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return Record(where, row)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Parquet rows hold numpy scalars and NaN for missing values; make them plain Python."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, float) and value != value:
            value = None
        out[key] = value
    return out


def load_splits(
    source: str, fmt: str | None = None, eval_source: str | None = None, eval_fraction: float = 0.05
) -> tuple[list[Conversation], list[Conversation], DataReport, DataReport]:
    """Train and validation conversations, with a report for each (which also names the format).

    The split comes from, in order: a separate `eval_source`; the source's own split (the hub's
    validation split, a folder's eval/test/validation files, or a `split` field in the rows); else
    a stable hash of each tree or record puts `eval_fraction` of them in validation."""
    train_rows, eval_rows, fmt = _split_records(source, fmt, eval_source, eval_fraction)
    if fmt not in CONVERTERS:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    train_report, eval_report = DataReport(format=fmt), DataReport(format=fmt)
    train = CONVERTERS[fmt](train_rows, train_report)
    held_out = CONVERTERS[fmt](eval_rows, eval_report)
    return train, held_out, train_report, eval_report


def _split_records(
    source: str, fmt: str | None, eval_source: str | None, eval_fraction: float
) -> tuple[list[Record], list[Record], str]:
    records, own_held_out, known_fmt = _source_records(source)
    if not records:
        raise DataError(f"{source}: no records")
    fmt = fmt or known_fmt or guess_format(records[0])
    if eval_source is not None:
        return records + (own_held_out or []), read_records(Path(eval_source)), fmt
    if own_held_out is not None:
        return records, own_held_out, fmt
    if any("split" in r.row for r in records):
        return (
            *_partition(records, lambda r: str(r.row.get("split", "train")).lower() in VALIDATION_NAMES),
            fmt,
        )
    return (*_partition(records, lambda r: _hash_fraction(_group_key(r, fmt)) < eval_fraction), fmt)


def _source_records(source: str) -> tuple[list[Record], list[Record] | None, str | None]:
    """(records, the source's own held-out records or None, its known format or None) of a hub
    alias (`oasst1`, `guanaco`), `sample`, a local file or folder, or a hub dataset id."""
    path = SAMPLE if source == "sample" else Path(source)
    if source in HUB_SOURCES and not path.exists():
        name, fmt = HUB_SOURCES[source]
        return (*_hub_records(name), fmt)
    if path.is_dir():
        return (*_folder_records(path), None)
    if is_hub_id(source):
        return (*_hub_records(source), None)
    return read_records(path), None, None


def is_hub_id(source: str) -> bool:
    """`owner/name` that is no local path and no data file's name: a Hugging Face dataset id."""
    return (
        HUB_ID.fullmatch(source) is not None
        and not Path(source).exists()
        and not source.endswith(FILE_SUFFIXES)
    )


def _folder_records(folder: Path) -> tuple[list[Record], list[Record] | None]:
    """A dataset folder (as a hub dataset's files, downloaded): its eval/test/validation files are
    the held-out split, the other data files are for training."""
    files = sorted(p for p in folder.iterdir() if p.suffix in FILE_SUFFIXES and p.is_file())
    held = [p for p in files if VALIDATION_NAMES & set(re.split(r"[_.\-]", p.stem.lower()))]
    train = [p for p in files if p not in held]
    if not train:
        raise DataError(f"{folder}: no training data file ({', '.join(FILE_SUFFIXES)}) in this folder")
    return _read_all(train), _read_all(held) if held else None


def _read_all(paths: list[Path]) -> list[Record]:
    return [rec for path in paths for rec in read_records(path)]


def _partition(
    records: list[Record], held_out: Callable[[Record], bool]
) -> tuple[list[Record], list[Record]]:
    """(kept for training, held out), in the file's order."""
    kept, held = [], []
    for rec in records:
        (held if held_out(rec) else kept).append(rec)
    return kept, held


def _group_key(rec: Record, fmt: str) -> str:
    """Messages of one OASST1 tree stay together, so no conversation straddles the split."""
    if fmt == "oasst1":
        return str(rec.row.get("message_tree_id") or rec.row.get("message_id"))
    return json.dumps(rec.row, sort_keys=True, default=str)


def _hash_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0x100000000


def _hub_records(name: str) -> tuple[list[Record], list[Record] | None]:
    """A hub dataset's train split and its validation split, if it has one (needs the `datasets`
    package and the hub, or its cache)."""
    try:
        import datasets
    except ImportError as err:
        raise DataError("reading hub datasets needs `pip install datasets`; or pass a local file") from err
    try:
        loaded = datasets.load_dataset(name)
    except Exception as err:
        raise DataError(
            f"{name} is not a local file or folder, and cannot be loaded from the hub ({err}); "
            "download its files and pass the file or folder"
        ) from err
    held = next((s for s in loaded if s in VALIDATION_NAMES), None)
    train = [Record(f"{name}[train]:row {i + 1}", row) for i, row in enumerate(loaded["train"])]
    valid = (
        [Record(f"{name}[{held}]:row {i + 1}", row) for i, row in enumerate(loaded[held])] if held else None
    )
    return train, valid
