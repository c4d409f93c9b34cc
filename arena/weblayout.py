"""The web app's page: the Vote, Leaderboard and Explore tabs, and how each control is wired to
its handler (:mod:`arena.webhandlers`), always through :func:`on` so no handler skips the rate
limits."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from arena import explore, votes  # noqa: E402
from arena.webhandlers import ANY, FILE_AGE, METHOD_LABELS, Arena  # noqa: E402
from arena.webrender import THEME_FONTS  # noqa: E402


def build_app(arena: Arena) -> gr.Blocks:
    """The Blocks app: Vote and Leaderboard, and Explore only when the operator turned it on (it
    names the models of answers that people are judging, so voters must not reach it)."""
    with gr.Blocks(title="Guanaco arena", analytics_enabled=False, delete_cache=(FILE_AGE, FILE_AGE)) as app:
        gr.Markdown("# Guanaco arena")
        shown = vote_tab(arena)
        board_bench = leaderboard_tab(arena)
        if arena.explore:
            explore_tab(arena)
        on(arena, "board", app.load, arena.board_choices, None, [board_bench])
        on(arena, "next", app.load, arena.next_battle, None, shown)
    unguarded = [f.name for f in app.fns.values() if not hasattr(f.fn, "guarded")]
    if unguarded:  # a handler added without `on` would skip the rate limits: refuse to serve it
        raise RuntimeError(f"handlers registered without arena.weblayout.on: {unguarded}")
    return app


def on(
    arena: Arena,
    kind: str,
    trigger: Callable[..., Any],
    handler: Callable[..., Any],
    inputs: Any,
    outputs: Any,
    api_name: str | bool = False,
    **options: Any,
) -> Any:
    """Register `handler` on `trigger` behind :meth:`Arena.guarded`: the one way handlers are added."""
    return trigger(arena.guarded(kind, handler), inputs, outputs, api_name=api_name, **options)


def side_by_side(first: str, second: str, ids: tuple[str, str]) -> tuple[gr.HTML, gr.HTML]:
    """Two titled boxes in two columns (two answers, or slot 1 and slot 2)."""
    boxes = []
    with gr.Row(equal_height=False):
        for title, elem_id in zip((first, second), ids, strict=True):
            with gr.Column():
                gr.Markdown(f"### {title}")
                boxes.append(gr.HTML(elem_id=elem_id))
    return boxes[0], boxes[1]


def vote_tab(arena: Arena) -> list[Any]:
    """The Vote tab; returns the outputs that show a battle (the first holds the battle's id, kept on
    the server in Gradio's session state)."""
    with gr.Tab("Vote", id="vote"):
        who = "your user name" if arena.auth else "an anonymous id this browser was given"
        gr.Markdown(f"Votes are stored under {who}.")
        battle = gr.State(None)
        prompt = gr.HTML(elem_id="prompt")
        left, right = side_by_side("Answer A", "Answer B", ("answer-a", "answer-b"))
        with gr.Row():
            buttons = [
                gr.Button(label, variant="primary", interactive=False) for label in votes.BUTTON_VERDICTS
            ]
        status = gr.HTML(elem_id="vote-status")
        next_button = gr.Button("Next", elem_id="next")
    shown = [battle, prompt, left, right, status, *buttons]
    on(arena, "next", next_button.click, arena.next_battle, None, shown, api_name="next_battle",
       concurrency_limit=None)  # fmt: skip
    for label, button in zip(votes.BUTTON_VERDICTS, buttons, strict=True):
        verdict = votes.BUTTON_VERDICTS[label]
        api = "vote_" + {"1": "a", "2": "b"}.get(verdict, verdict)
        on(arena, "vote", button.click, arena.voter(label), [battle], [battle, status, *buttons],
           api_name=api, concurrency_limit=None)  # fmt: skip
    return shown


def leaderboard_tab(arena: Arena) -> gr.Dropdown:
    """The Leaderboard tab, refreshed whenever it is opened; returns its benchmark choice."""
    with gr.Tab("Leaderboard", id="leaderboard") as tab:
        with gr.Row():
            method = gr.Radio(list(METHOD_LABELS), value="Bradley-Terry", label="Method")
            judges = gr.Radio(list(explore.JUDGE_GROUPS), value="all", label="Judges")
            bench = gr.Dropdown([ANY, *([arena.benchmark] if arena.benchmark else [])],
                                value=arena.benchmark or ANY, label="Benchmark")  # fmt: skip
            intervals = gr.Checkbox(True, label="Show intervals")
        refresh = gr.Button("Refresh")
        info = gr.Markdown(elem_id="board-info")
        board = gr.Dataframe(elem_id="board", interactive=False)
        plot = gr.Image(type="filepath", label="Ratings", show_label=False, elem_id="board-plot")
        csv = gr.DownloadButton("Download CSV", elem_id="board-csv")
    inputs, outputs = [method, judges, bench, intervals], [info, board, plot, csv]
    for trigger in (refresh.click, tab.select, method.change, judges.change, intervals.change, bench.change):
        on(arena, "board", trigger, arena.leaderboard, inputs, outputs)
    return bench


def explore_tab(arena: Arena) -> None:
    """The Explore tab (only with `--explore`): filter, read, tag and export judgments."""
    with gr.Tab("Explore", id="explore") as tab:
        with gr.Row():
            bench = gr.Dropdown([ANY], value=ANY, label="Benchmark")
            category = gr.Dropdown([ANY], value=ANY, label="Category")
            model = gr.Dropdown([ANY], value=ANY, label="Model")
            opponent = gr.Dropdown([ANY], value=ANY, label="Opponent")
            outcome = gr.Dropdown([ANY, *explore.OUTCOMES], value=ANY, label="Outcome (for the model)")
            judge = gr.Dropdown(list(explore.JUDGE_GROUPS), value="all", label="Judge")
        shortcut = gr.Radio(list(explore.SHORTCUTS), value="all", label="Show")
        find = gr.Button("Show judgments", variant="primary")
        count = gr.Markdown()
        results = gr.Dataframe(interactive=False, elem_id="results", max_height=320)
        with gr.Row():
            export_csv = gr.DownloadButton("Export CSV", size="sm")
            export_json = gr.DownloadButton("Export JSON", size="sm")
        with gr.Row():
            picked = gr.Number(label="Judgment id", precision=0, elem_id="judgment-id")
            open_button = gr.Button("Open")
        info = gr.HTML(elem_id="detail-info")
        prompt = gr.HTML()
        answer_1, answer_2 = side_by_side("Slot 1", "Slot 2", ("slot-1", "slot-2"))
        gr.Markdown("### Judge's rationale")
        rationale = gr.HTML(elem_id="rationale")
        with gr.Row():
            tag = gr.Radio(list(explore.TAGS), value="lemon", label="Tag")
            note = gr.Textbox(label="Note", max_lines=3)
            tag_button = gr.Button("Tag")
        tag_status = gr.Markdown()
    filters = [bench, category, model, opponent, outcome, judge, shortcut]
    on(arena, "explore", find.click, arena.search, filters, [count, results, export_csv, export_json])
    on(arena, "explore", tab.select, arena.choices, None, [bench, category, model, opponent, judge])
    details = [info, prompt, answer_1, answer_2, rationale]
    picking = on(arena, "explore", results.select, arena.selected_id, [results], [picked])
    on(arena, "explore", picking.then, arena.detail, [picked], details)
    on(arena, "explore", open_button.click, arena.detail, [picked], details)
    tagging = on(arena, "explore", tag_button.click, arena.tag, [picked, tag, note], [tag_status])
    on(arena, "explore", tagging.then, arena.detail, [picked], details)


def theme() -> gr.themes.Theme:
    return gr.themes.Default(**THEME_FONTS)
