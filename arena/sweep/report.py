"""The sweep's table (CSV, Markdown) and plot: training cost against the tournament's rating."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from arena.query.judgments import read_judgments
from arena.store import Store
from arena.sweep.config import SweepConfig

log = logging.getLogger(__name__)


def results_table(
    store: Store, cfg: SweepConfig, records: list[dict[str, Any]], template_hash: str | None = None
) -> pd.DataFrame:
    """One row per setting: its grid values, trainable parameters, training time, peak memory,
    eval loss, and the Bradley-Terry rating with its 95% interval (prompts resampled); the rank
    counts only models whose interval lies wholly above (intervals that overlap share a rank).
    Judgments are the sweep judge's (with `template_hash`: made with that template only)."""
    from arena.ratings import rate

    names = [r["name"] for r in records]
    frame = read_judgments(store, benchmark=cfg.name, judge=cfg.judge, models=names)
    if template_hash is not None:
        frame = frame[frame.template_hash == template_hash].reset_index(drop=True)
    header: dict[str, Any] = {"benchmark": cfg.name, "judge": cfg.judge, "method": "bt",
                              "judgments": len(frame), "used": 0, "models": len(names)}  # fmt: skip
    ratings = None
    if not frame.empty:
        try:
            ratings = rate(frame, "bt", bootstrap=cfg.bootstrap, resample="prompt", seed=cfg.seed)
            header = ratings.attrs["header"]
        except ValueError as err:  # nothing readable yet: the table still shows the training side
            log.warning("no rating yet: %s", err)
    by_model = {} if ratings is None else ratings.set_index("model").to_dict("index")
    rows = []
    for record in records:
        rated = by_model.get(record["name"], {})
        rows.append({
            "model": record["name"], **{k: _cell(v) for k, v in record["settings"].items()},
            "trainable_params": record["trainable_params"], "train_seconds": record["train_seconds"],
            "peak_memory_mb": record["peak_memory_mb"], "eval_loss": record["eval_loss"],
            "rating": rated.get("rating"), "lower": rated.get("lower"), "upper": rated.get("upper"),
            "rank": rated.get("rank"), "matches": rated.get("matches", 0),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs["header"] = {**header, "params": {**header.get("params", {}), "memory": records[0]["memory"]}}
    return table


def _cell(value: Any) -> Any:
    return "+".join(value) if isinstance(value, list) else value


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table formatted for people (thousands separators, 3-decimal losses, rating [interval])."""
    shown = table.copy()
    shown["trainable_params"] = [f"{v:,}" for v in table["trainable_params"]]
    shown["train_seconds"] = [_num(v, "{:.1f}") for v in table["train_seconds"]]
    shown["peak_memory_mb"] = [_num(v, "{:,.0f}") for v in table["peak_memory_mb"]]
    shown["eval_loss"] = [_num(v, "{:.3f}") for v in table["eval_loss"]]
    shown["rating"] = [
        "-" if pd.isna(r) else f"{r:.0f} [{lo:.0f}, {hi:.0f}]"
        for r, lo, hi in zip(table["rating"], table["lower"], table["upper"], strict=True)
    ]
    shown["rank"] = [_num(v, "{:.0f}") for v in table["rank"]]
    shown = shown.drop(columns=["lower", "upper"])
    shown.attrs = table.attrs
    return shown


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None or pd.isna(value) else fmt.format(value)


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Rating (with its interval) against trainable parameters and against training time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rated = table[table["rating"].notna()]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120, sharey=True)
    for ax, column, xlabel in ((axes[0], "trainable_params", "trainable parameters"),
                               (axes[1], "train_seconds", "training time (s)")):  # fmt: skip
        shown = rated[rated[column].notna()]
        errors = [shown["rating"] - shown["lower"], shown["upper"] - shown["rating"]]
        ax.errorbar(shown[column], shown["rating"], yerr=errors, fmt="o", capsize=4, color="#3182bd")
        for _, row in shown.iterrows():
            ax.annotate(row["model"], (row[column], row["rating"]), textcoords="offset points", xytext=(5, 5),
                        fontsize=7)  # fmt: skip
        ax.set_xscale("log" if column == "trainable_params" else "linear")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Bradley-Terry rating (95% interval)")
    header = table.attrs.get("header", {})
    fig.suptitle(f"{header.get('benchmark')}: judge {header.get('judge')}, {header.get('used', 0)} judgments",
                 fontsize=10)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
