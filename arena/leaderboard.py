"""Leaderboards: a rating table rendered as text, CSV, JSON, Markdown or HTML, and PNG plots.

Every format carries the header of :mod:`arena.ratings` (benchmark, judge, method, parameters,
counts, unparsed judgments excluded), so a leaderboard copied anywhere still says how it was made:
as text above the table (table, md, html), as `#` comment lines before the CSV's column row, and as
the `header` key of the JSON document (rows under `rows`).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMATS = ("table", "csv", "json", "md", "html")

HEADER_LABELS = {
    "benchmark": "benchmark",
    "judge": "judge",
    "template_id": "template",
    "method": "method",
    "params": "parameters",
    "judgments": "judgments selected",
    "used": "judgments rated",
    "unparsed_excluded": "unparsed or errored (excluded)",
    "models": "models",
    "interval": "interval (lower..upper)",
    "ranks": "rank",
}


def header_lines(table: pd.DataFrame) -> list[tuple[str, str]]:
    """The header as (label, value) pairs, in a fixed order, for any format."""
    header = table.attrs.get("header", {})
    lines = []
    for key, label in HEADER_LABELS.items():
        if key not in header or header[key] is None:
            continue
        value = header[key]
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        lines.append((label, str(value)))
    return lines


def render(table: pd.DataFrame, fmt: str = "table") -> str:
    """The leaderboard in `fmt` (one of FORMATS), header included."""
    renderers = {"table": _text, "csv": _csv, "json": _json, "md": _markdown, "html": _html}
    if fmt not in renderers:
        raise ValueError(f"unknown leaderboard format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return renderers[fmt](table)


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers rounded for people: TrueSkill's mu is around 25, so it keeps two decimals."""
    digits = 2 if table.attrs.get("header", {}).get("method") == "trueskill" else 1
    return table.round(digits)


def coefficients(table: pd.DataFrame) -> pd.DataFrame | None:
    """The style-control coefficients a table carries (see arena.style), or None."""
    found = table.attrs.get("coefficients")
    return found if isinstance(found, pd.DataFrame) else None


def _text(table: pd.DataFrame) -> str:
    head = "\n".join(f"{label}: {value}" for label, value in header_lines(table))
    text = f"{head}\n\n{_display(table).to_string(index=False, na_rep='-')}\n"
    style = coefficients(table)
    if style is not None:
        text += f"\nstyle coefficients (95% interval):\n{style.round(3).to_string(index=False, na_rep='-')}\n"
    return text


def _csv(table: pd.DataFrame) -> str:
    head = "".join(f"# {label}: {value}\n" for label, value in header_lines(table))
    style = coefficients(table)
    if style is not None:
        head += "".join(f"# style coefficient {r.feature}: {r.coefficient:.4f} [{r.lower:.4f}, {r.upper:.4f}]\n"
                        for r in style.itertuples())  # fmt: skip
    return head + table.to_csv(index=False)


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def _json(table: pd.DataFrame) -> str:
    document: dict[str, Any] = {"header": table.attrs.get("header", {}), "rows": _records(table)}
    style = coefficients(table)
    if style is not None:
        document["coefficients"] = _records(style)
    return json.dumps(document, indent=2, default=_plain) + "\n"


def _plain(value: Any) -> Any:
    """JSON-safe scalars: numpy numbers as Python ones, NaN as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _markdown(table: pd.DataFrame) -> str:
    head = "".join(f"- **{label}**: {_md_cell(value)}\n" for label, value in header_lines(table))
    text = head + "\n" + _md_table(_display(table))
    style = coefficients(table)
    if style is not None:
        text += "\nStyle coefficients (95% interval):\n\n" + _md_table(style.round(3))
    return text


def _md_table(shown: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _md_cell(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return html.escape(str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def _html(table: pd.DataFrame) -> str:
    header = table.attrs.get("header", {})
    title = html.escape(
        f"Leaderboard: {header.get('benchmark') or 'all benchmarks'}, {header.get('method', '')}"
    )
    items = "".join(
        f"<dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd>" for label, value in header_lines(table)
    )
    body = _display(table).to_html(index=False, escape=True, na_rep="-", border=0, classes="leaderboard")
    style = coefficients(table)
    if style is not None:
        body += "\n<h2>Style coefficients (95% interval)</h2>\n" + style.round(3).to_html(
            index=False, escape=True, na_rep="-", border=0, classes="coefficients"
        )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em}dl{display:grid;grid-template-columns:max-content auto;"
        "gap:.2em 1em}dt{font-weight:600}table{border-collapse:collapse}th,td{padding:.3em .8em;"
        "border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{style}</style></head>\n<body><h1>{title}</h1><dl>{items}</dl>\n{body}\n</body></html>\n"
    )


def plot_ratings(table: pd.DataFrame, path: str | Path) -> Path:
    """A PNG of each model's rating with its interval, best at the top. For the paper's Elo, the
    thin bar is the spread across single orderings (a diagnostic) and the thick one the interval
    the header names (a prompt bootstrap by default)."""
    plt = _pyplot()
    header = table.attrs.get("header", {})
    shown = table.iloc[::-1]
    y = np.arange(len(shown))
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * len(shown)), dpi=120)
    if {"spread_lower", "spread_upper"} <= set(shown.columns):
        _bars(ax, shown, y, "spread_lower", "spread_upper", "2.5-97.5% across orderings", 1.2, "#9ecae1")
    _bars(ax, shown, y, "lower", "upper", _interval_label(header), 3.5, "#3182bd")
    ax.plot(shown["rating"], y, "o", color="#08306b", zorder=3)
    ax.set_yticks(y, [f"{m}  (#{r})" for m, r in zip(shown["model"], shown["rank"], strict=True)])
    ax.set_xlabel("% of reference" if header.get("method") == "relative" else "rating")
    ax.set_title(_plot_title(header), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _bars(
    ax: Any, table: pd.DataFrame, y: np.ndarray, lo: str, hi: str, label: str, width: float, color: str
):
    known = table[lo].notna() & table[hi].notna()
    if known.any():
        ax.hlines(y[known.to_numpy()], table[lo][known], table[hi][known], lw=width, color=color, label=label)


def plot_win_rates(frame: pd.DataFrame, path: str | Path) -> Path:
    """A PNG heatmap of the row model's win rate against the column model (ties half)."""
    from arena.ratings import win_rate_matrix

    plt = _pyplot()
    matrix = win_rate_matrix(frame)
    size = 2.5 + 0.7 * len(matrix)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=120)
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="RdBu", vmin=0, vmax=1)
    ax.set_xticks(range(len(matrix)), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix)), matrix.index)
    for (i, j), value in np.ndenumerate(matrix.to_numpy(dtype=float)):
        if not math.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(value - 0.5) > 0.3 else "black")  # fmt: skip
    fig.colorbar(image, ax=ax, label="win rate of row model (ties half)")
    ax.set_xlabel("opponent")
    ax.set_title("Win rates", fontsize=10)
    return _save(fig, path)


def _interval_label(header: dict[str, Any]) -> str:
    """The legend's name for `lower..upper`: the header's interval up to its first comma."""
    return str(header.get("interval") or "95% interval").split(",")[0]


def _plot_title(header: dict[str, Any]) -> str:
    parts = [header.get("benchmark"), f"judge {header['judge']}" if header.get("judge") else None,
             header.get("method"), f"{header.get('used', '?')} judgments"]  # fmt: skip
    return ", ".join(p for p in parts if p)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    fig.clf()
    _pyplot().close(fig)
    return path
