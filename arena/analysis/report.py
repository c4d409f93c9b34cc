"""Analysis results as a person reads or reuses them: printed tables, CSV, JSON and PNG plots.

Every analysis returns named tidy tables; :func:`emit` writes them all in one format, either to
the terminal or into a folder (``<analysis>.txt``, ``<analysis>.<table>.csv``, ``<analysis>.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

OUTPUT_FORMATS = ("table", "csv", "json")
TEXT_WIDTH = 80
"""Longest text cell in printed tables (full text stays in CSV and JSON)."""


def as_text(tables: dict[str, pd.DataFrame]) -> str:
    blocks = []
    for name, table in tables.items():
        shown = table.copy()
        for column in shown.columns:
            if not pd.api.types.is_numeric_dtype(shown[column]):
                shown[column] = shown[column].map(_short)
        body = shown.to_string(index=False, float_format=lambda v: f"{v:.3f}") if len(shown) else "(none)"
        blocks.append(f"== {name} ==\n{body}\n")
    return "\n".join(blocks)


def _short(value: object) -> object:
    if isinstance(value, str):
        flat = " ".join(value.split())
        return flat if len(flat) <= TEXT_WIDTH else flat[: TEXT_WIDTH - 1] + "…"
    return value


def as_json(tables: dict[str, pd.DataFrame]) -> str:
    data = {
        name: json.loads(table.to_json(orient="records", double_precision=6))
        for name, table in tables.items()
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def emit(tables: dict[str, pd.DataFrame], fmt: str, out: Path | None, stem: str) -> list[Path]:
    """Print `tables` as `fmt`, or write them under the folder `out`; returns the files written."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {OUTPUT_FORMATS}, not {fmt!r}")
    if out is None:
        if fmt == "csv":
            for name, table in tables.items():
                sys.stdout.write(f"# {name}\n{table.to_csv(index=False, lineterminator=chr(10))}\n")
        else:
            sys.stdout.write(as_text(tables) if fmt == "table" else as_json(tables))
        return []
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        paths = []
        for name, table in tables.items():
            paths.append(out / f"{stem}.{name}.csv")
            table.to_csv(paths[-1], index=False, lineterminator="\n")
        return paths
    path = out / f"{stem}.{'txt' if fmt == 'table' else 'json'}"
    path.write_text(as_text(tables) if fmt == "table" else as_json(tables), encoding="utf-8")
    return [path]


# ---------------------------------------------------------------- plots


def _figure(width: float = 7.0, height: float = 4.0):  # noqa: ANN202 - matplotlib types are heavy to import
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=120)


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_position(table: pd.DataFrame, path: Path) -> Path:
    """Stacked bars per judge group and template: share of first wins, ties, second wins."""
    fig, ax = _figure()
    names = table["group"].astype(str) + " (" + table["template_id"].astype(str) + ")"
    left = np.zeros(len(table))
    for column, label, colour in (("first_rate", "first shown wins", "#4c72b0"), ("tie_rate", "tie / both bad", "#bbbbbb"),
                                  ("second_rate", "second shown wins", "#dd8452")):  # fmt: skip
        ax.barh(names, table[column], left=left, label=label, color=colour)
        left += table[column].to_numpy()
    ax.axvline(0.5, color="black", linewidth=0.8, linestyle=":")
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judgments")
    ax.set_title("Position bias")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_length(table: pd.DataFrame, path: Path) -> Path:
    """Win rate against mean length difference, one line per judge group."""
    fig, ax = _figure()
    for (group, template), rows in table.groupby(["group", "template_id"], sort=True):
        ax.plot(rows["mean_diff"], rows["win_rate"], marker="o", label=f"{group} ({template})")
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
    ax.set_xscale("symlog", linthresh=100)
    ax.set_xlabel("this answer's length minus the other's (characters)")
    ax.set_ylabel("win rate (ties count half)")
    ax.set_title("Length bias")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_confusion(matrix: pd.DataFrame, a: str, b: str, path: Path) -> Path:
    """Heat map of the two judges' labels on the same items."""
    fig, ax = _figure(4.5, 4.0)
    ax.imshow(matrix.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(matrix.columns)), [str(c) for c in matrix.columns])
    ax.set_yticks(range(len(matrix.index)), [str(i) for i in matrix.index])
    for (i, j), value in np.ndenumerate(matrix.to_numpy()):
        ax.text(j, i, str(value), ha="center", va="center")
    ax.set_xlabel(f"{b} (slot-1 view)")
    ax.set_ylabel(f"{a} (slot-1 view)")
    ax.set_title("Agreement on the same items")
    return _save(fig, path)


def plot_agreement(table: pd.DataFrame, path: Path) -> Path:
    """MT-bench agreement per turn, with and without ties, with bootstrap intervals."""
    fig, ax = _figure()
    names = "turn " + table["turn"].astype(str) + ", " + table["ties"]
    ax.barh(names, table["agreement"], color="#4c72b0",
            xerr=[table["agreement"] - table["lower"], table["upper"] - table["agreement"]])  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_xlabel("agreement (share of compared votes)")
    ax.set_title(f"{table['judge_a'].iloc[0]} vs {table['judge_b'].iloc[0]} (MT-bench protocol)")
    return _save(fig, path)


def plot_losses(losses: pd.DataFrame, model: str, path: Path) -> Path:
    """How many of the model's worst losses went to each opponent, opponents by rating."""
    fig, ax = _figure()
    counts = losses.groupby(["opponent", "opponent_rating"]).size().reset_index(name="losses")
    counts = counts.sort_values("opponent_rating")
    ax.barh([f"{o} ({r:.0f})" for o, r in zip(counts["opponent"], counts["opponent_rating"], strict=True)],
            counts["losses"], color="#c44e52")  # fmt: skip
    ax.set_xlabel("losses listed")
    ax.set_title(f"{model}: worst losses by opponent (rating)")
    return _save(fig, path)
