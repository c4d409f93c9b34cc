"""The human arena in a browser: Vote, Leaderboard and Explore tabs over the one store (Gradio 6).

Model output is untrusted: every answer, prompt and rationale reaches the page only through
:func:`safe_markdown` (Markdown rendered with raw HTML escaped, so ``<script>`` shows as text,
then cleaned by nh3 to a small allowlist of tags, attributes and URL schemes) or :func:`escaped`. Import this module only after
``GRADIO_ANALYTICS_ENABLED=False`` is set (``app.py`` and ``guanaco app`` do), so that starting the
app calls nothing outside the machine.
"""

from __future__ import annotations

import functools
import html
import math
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import markdown  # noqa: E402
import nh3  # noqa: E402
import pandas as pd  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402

from arena import explore, votes  # noqa: E402
from arena.passwords import Authenticator  # noqa: E402
from arena.query.contestants import contestant_names  # noqa: E402
from arena.query.judgments import judge_names, judgments_frame  # noqa: E402
from arena.query.prompts import benchmark_names, category_names  # noqa: E402
from arena.store import Store  # noqa: E402
from arena.webguard import (  # noqa: E402
    VOTER_HEADER,
    Guard,
    RateLimiter,
    RateLimits,
    VoterIds,
    allowed_hosts,
    is_loopback,
    is_wildcard,
)

ALLOWED_TAGS = {
    "p", "br", "hr", "pre", "code", "blockquote", "em", "strong", "del", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}

RATING_PARAMS = {
    "elo": {"orderings": 200, "seed": 0, "bootstrap": 20, "replicate_orderings": 20},
    "bt": {"bootstrap": 100, "seed": 0},
    "trueskill": {},
}
"""Small orderings and bootstrap counts keep the leaderboard tab responsive; the CLI does the full runs."""
METHOD_LABELS = {"Elo over orderings": "elo", "Bradley-Terry": "bt", "TrueSkill": "trueskill"}
ANY = "(any)"
MAX_SELECTION = 2000
"""Explore shows and exports at most this many judgments at once (all of them: `guanaco release`)."""
FILE_AGE = 3600
"""Seconds a download file is kept, by the app and by Gradio's cache."""
EXPLORE_COLUMNS = ["judgment_id", "benchmark", "prompt_key", "category", "model_1", "model_2", "judge",
                   "verdict", "status"]  # fmt: skip
SHORTCUT_COLUMNS = {"biggest upsets": ["winner", "loser", "gap"], "position flips": ["flip"],
                    "GPT-4 vs human disagreements": ["pair"]}  # fmt: skip

CSS = """
.answer-box {max-height: 30em; overflow: auto; overflow-wrap: anywhere; padding: .4em .9em;
  border: 1px solid var(--border-color-primary); border-radius: 8px; background: var(--block-background-fill);}
.answer-box pre {white-space: pre-wrap;}
.prompt-box {max-height: 14em;}
.rationale {white-space: pre-wrap; font-family: var(--font-mono); font-size: .9em;}
"""
THEME_FONTS = {
    "font": ["ui-sans-serif", "system-ui", "sans-serif"],
    "font_mono": ["ui-monospace", "monospace"],
}
"""System fonts: the default theme would fetch Google Fonts, an outside call on every page load."""


def safe_markdown(text: str | None) -> str:
    """Markdown to HTML in two layers: Markdown passes no raw HTML through (a model's `<script>` or
    `<img onerror>` shows as the text it wrote), then nh3 keeps only :data:`ALLOWED_TAGS` and
    attributes of what Markdown made, and links to http(s) and mailto (never `javascript:`)."""
    converter = markdown.Markdown(
        extensions=["fenced_code", "tables", "sane_lists"],
        extension_configs={"tables": {"use_align_attribute": True}},
    )
    converter.preprocessors.deregister("html_block")  # Python-Markdown's documented way to escape
    converter.inlinePatterns.deregister("html")  # raw HTML since safe_mode was removed
    return nh3.clean(
        converter.convert(text or ""),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
    )


def escaped(text: str | None) -> str:
    return html.escape(text or "")


def box(text: str | None, css_class: str = "answer-box") -> str:
    """Untrusted text as sanitized Markdown in a scrollable box."""
    return f'<div class="{css_class}">{safe_markdown(text)}</div>'


def prompt_box(context: list[Any], turns: list[str]) -> str:
    """The conversation so far (if any) and the user's turns, each sanitized."""
    parts = [
        f"**{escaped(str(t.get('role', 'context')))}:** {t.get('content', '')}"
        if isinstance(t, dict)
        else str(t)
        for t in context
    ]
    parts += turns if len(turns) <= 1 else [f"**Turn {i}:** {t}" for i, t in enumerate(turns, 1)]
    return box("\n\n".join(parts), "answer-box prompt-box")


class Arena:
    """The app's handlers, bound to one store; every handler opens its own short transaction.

    Who votes is decided here, never by what a client sends: the logged-in user when the app has
    logins, else the anonymous id the server gave this browser (:mod:`arena.webguard`). Every
    handler is registered through :meth:`guarded`, which applies the per-session and per-IP rate
    limits of its kind, whether it is called from the page, by `api_name` or by `fn_index`."""

    def __init__(
        self,
        store: Store,
        benchmark: str | None = None,
        auth: bool = False,
        explore: bool = False,
        limits: RateLimits | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.store = store
        self.benchmark = benchmark
        self.auth = auth
        self.explore = explore
        self.limits = limits or RateLimits()
        self.limiter = limiter or RateLimiter()
        self.book = votes.BattleBook()
        self.files = Path(tempfile.mkdtemp(prefix="guanaco-app-"))

    def new_file(self, stem: str) -> Path:
        """A fresh path (no suffix) for a download; files older than :data:`FILE_AGE` are removed,
        so a long-running app does not fill the disk (Gradio keeps its own copy while it serves it)."""
        cutoff = time.time() - FILE_AGE
        for old in self.files.iterdir():
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
        return self.files / f"{stem}-{uuid.uuid4().hex[:12]}"

    # ------------------------------------------------------------------ who, and how often

    def annotator(self, request: gr.Request) -> str:
        """The logged-in user, or ``anon-<id>`` for the id the server gave this browser."""
        if self.auth:
            if getattr(request, "username", None):
                return str(request.username)
            raise gr.Error("Log in to vote.")
        voter = request.headers.get(VOTER_HEADER) if request.headers else None
        if not voter:
            raise gr.Error("No voter id: allow cookies for this site (or wait: too many new visitors "
                           "from your address).")  # fmt: skip
        return f"anon-{voter}"

    def guarded(self, kind: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """`handler` behind the rate limits of `kind` (:class:`RateLimits`), per session and per IP.
        The handler must take a `request: gr.Request` (Gradio passes it by that annotation)."""
        per_session, per_ip = self.limits.budget(kind)

        @functools.wraps(handler)
        def limited(*args: Any, **kwargs: Any) -> Any:
            request = next(a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request))
            ip = request.client.host if request.client else "unknown"
            session = (getattr(request, "username", None) or request.headers.get(VOTER_HEADER)
                       or request.session_hash or ip)  # fmt: skip
            for key, limit in (((kind, "session", session), per_session), ((kind, "ip", ip), per_ip)):
                wait = self.limiter.wait(key, limit, self.limits.window_s)
                if wait:
                    raise gr.Error(f"Too many requests: try again in {math.ceil(wait)} s.")
            return handler(*args, **kwargs)

        limited.guarded = kind  # type: ignore[attr-defined]
        return limited

    # ------------------------------------------------------------------ vote

    def next_battle(self, request: gr.Request) -> tuple:
        """Issue a battle to this annotator; the page gets its id, the prompt and two anonymous answers."""
        buttons = [gr.update(interactive=True)] * len(votes.BUTTON_VERDICTS)
        annotator = self.annotator(request)
        try:
            with self.store.session() as session:
                battle = votes.next_battle(session, annotator, self.benchmark)
                texts = votes.battle_texts(session, battle)
        except (votes.NoBattle, ValueError) as err:
            off = [gr.update(interactive=False)] * len(votes.BUTTON_VERDICTS)
            message = f'<p class="notice">{escaped(str(err))}</p>'
            return (None, message, "", "", "", *off)
        self.book.issue(annotator, battle)
        about = f"{texts['benchmark']}" + (f" · {texts['category']}" if texts["category"] else "")
        return (
            battle.battle_id,
            f"<p><small>{escaped(about)}</small></p>" + prompt_box(texts["context"], texts["turns"]),
            box(texts["left"]),
            box(texts["right"]),
            '<p class="notice">Which answer is better? Vote to see the models.</p>',
            *buttons,
        )

    def vote(self, label: str, battle_id: str | None, request: gr.Request) -> tuple:
        """Store this annotator's vote on the battle issued to them, then reveal its models."""
        off = [gr.update(interactive=False)] * len(votes.BUTTON_VERDICTS)
        annotator = self.annotator(request)
        try:
            battle = self.book.take(annotator, battle_id)
        except votes.NotIssued as err:  # leave the page as it is: it may hold another battle
            return (gr.update(), f'<p class="notice">{escaped(str(err))}</p>', *[gr.update()] * len(off))
        new = votes.record_vote(self.store, battle, annotator, votes.BUTTON_VERDICTS[label])
        said = (
            f"Vote recorded: {label}."
            if new
            else "You already voted on these two answers; your first vote stands."
        )
        reveal = (
            f'<p id="reveal"><b>A</b> was <b class="model-a">{escaped(battle.model_left)}</b>, '
            f'<b>B</b> was <b class="model-b">{escaped(battle.model_right)}</b>. '
            f"{escaped(said)} Press Next for another battle.</p>"
        )
        return (None, reveal, *off)

    def voter(self, label: str) -> Callable[..., tuple]:
        """The handler of one vote button (Gradio passes `request` by its annotation)."""

        def vote(battle_id: str | None, request: gr.Request) -> tuple:
            return self.vote(label, battle_id, request)

        return vote

    # ------------------------------------------------------------------ leaderboard

    def leaderboard(
        self, method_label: str, judge_group: str, benchmark: str, intervals: bool, request: gr.Request
    ) -> tuple:
        """Ratings table, plot and CSV for the chosen method and judges (the status line says why
        nothing is shown when there is nothing to rate)."""
        from arena.leaderboard import header_lines, plot_ratings, render
        from arena.ratings import rate

        method = METHOD_LABELS[method_label]
        with self.store.session() as session:
            frame = explore.filter_judgments(
                judgments_frame(session, None if benchmark in (ANY, None) else benchmark),
                judge=judge_group,
            )
        try:
            table = rate(frame, method, **RATING_PARAMS[method])
        except ValueError as err:
            return (f"Nothing to rate: {escaped(str(err))}", pd.DataFrame(), None, gr.update(value=None))
        name = self.new_file(f"leaderboard-{method}")
        plot = plot_ratings(table, name.with_suffix(".png"))
        csv = name.with_suffix(".csv")
        csv.write_text(render(table, "csv"), encoding="utf-8")
        shown = table if intervals else table.drop(columns=[c for c in table if "lower" in c or "upper" in c])
        info = " · ".join(f"{label}: {value}" for label, value in header_lines(table))
        return (escaped(info), shown.round(2), str(plot), gr.update(value=str(csv)))

    # ------------------------------------------------------------------ explore

    def board_choices(self, request: gr.Request) -> dict:
        """The leaderboard's benchmark choices from the store as it is now."""
        with self.store.session() as session:
            benchmarks = benchmark_names(session)
        return gr.update(choices=[ANY, *benchmarks])

    def choices(self, request: gr.Request) -> tuple:
        """Explore's dropdown choices from the store as it is now (new models and judges appear)."""
        with self.store.session() as session:
            benchmarks = benchmark_names(session)
            categories = category_names(session)
            models = contestant_names(session)
            judges = judge_names(session)
        return (
            gr.update(choices=[ANY, *benchmarks]),
            gr.update(choices=[ANY, *categories]),
            gr.update(choices=[ANY, *models]),
            gr.update(choices=[ANY, *models]),
            gr.update(choices=[*explore.JUDGE_GROUPS, *judges]),
        )

    def search(
        self,
        benchmark: str,
        category: str,
        model: str,
        opponent: str,
        outcome: str,
        judge: str,
        shortcut: str,
        request: gr.Request,
    ) -> tuple:
        """The selection as a table, plus CSV and JSON exports of it in full."""
        pick = {k: (None if v in (ANY, None, "") else v) for k, v in
                dict(benchmark=benchmark, category=category, model=model, opponent=opponent, outcome=outcome,
                     judge=judge).items()}  # fmt: skip
        with self.store.session() as session:
            frame = judgments_frame(session, pick["benchmark"])
            chosen = explore.filter_judgments(frame, **pick)
            chosen, extra = self._shortcut(chosen, frame, pick["judge"], shortcut)
            total = len(chosen)
            chosen = chosen.head(MAX_SELECTION)
            name = self.new_file("selection")
            ids = chosen["judgment_id"].tolist()
            csv = explore.export_selection(session, ids, name.with_suffix(".csv"))
            as_json = explore.export_selection(session, ids, name.with_suffix(".json"))
        count = f"{total} judgments" + (f" (showing and exporting the first {MAX_SELECTION}: narrow the filters)"
                                        if total > MAX_SELECTION else "")  # fmt: skip
        return (
            count,
            chosen[EXPLORE_COLUMNS + extra],
            gr.update(value=str(csv)),
            gr.update(value=str(as_json)),
        )

    def _shortcut(
        self, chosen: pd.DataFrame, frame: pd.DataFrame, judge: str | None, shortcut: str
    ) -> tuple[pd.DataFrame, list[str]]:
        if shortcut == "biggest upsets":
            from arena.ratings import rate

            rated = explore.filter_by_judge(frame, judge)
            try:
                ratings = rate(rated, "bt", bootstrap=0).set_index("model")["rating"].to_dict()
            except ValueError:
                ratings = {}
            chosen = explore.upsets(chosen, ratings)
        elif shortcut == "position flips":
            chosen = explore.position_flips(chosen)
        elif shortcut == "GPT-4 vs human disagreements":
            chosen = explore.disagreements(chosen)
        return chosen, SHORTCUT_COLUMNS.get(shortcut, [])

    def detail(self, judgment_id: float | None, request: gr.Request) -> tuple:
        if judgment_id is None:
            return ("Pick a row, or type a judgment id.", "", "", "", "")
        with self.store.session() as session:
            try:
                d = explore.judgment_detail(session, int(judgment_id))
            except KeyError as err:
                return (escaped(str(err.args[0])), "", "", "", "")
        head = (
            f"Judgment {d['judgment_id']} · {d['benchmark']} #{d['prompt_key']} ({d['category'] or 'no category'})"
            f" · judge {d['judge']} · template {d['template_id']} · verdict {d['verdict']} · status {d['status']}"
        )
        tags = "; ".join(f"{t['tag']} by {t['annotator']}: {t['note'] or ''}" for t in d["tags"])
        rationale = (
            f'<div class="answer-box rationale">{escaped(d["rationale"] or "(no rationale stored)")}</div>'
        )
        info = escaped(head) + (f"<br>Tags: {escaped(tags)}" if tags else "")
        return (info, prompt_box(d["context"], d["turns"]), box(d["answer_1"]), box(d["answer_2"]), rationale)

    def tag(self, judgment_id: float | None, tag: str, note: str, request: gr.Request) -> str:
        annotator = self.annotator(request)
        if judgment_id is None:
            return "Pick a judgment first."
        try:
            with self.store.session() as session:
                new = explore.tag_judgment(session, int(judgment_id), annotator, tag, note)
        except (KeyError, ValueError) as err:
            return escaped(str(err.args[0]))
        return f"Tagged judgment {int(judgment_id)} as {tag}" + ("" if new else " (note updated)")

    def selected_id(self, table: pd.DataFrame, event: gr.SelectData, request: gr.Request) -> float | None:
        """The judgment id of the clicked row of the Explore table."""
        if event is None:
            return None
        if event.row_value:
            return float(event.row_value[0])
        row = event.index[0] if isinstance(event.index, list | tuple) else event.index
        return float(table.iloc[row]["judgment_id"]) if len(table) else None


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
        raise RuntimeError(f"handlers registered without arena.webapp.on: {unguarded}")
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


@dataclass(frozen=True)
class Exposure:
    """Who may reach the app and how: the address it binds, the extra names it answers to, logins
    (user -> scrypt hash) or anonymous voting, Explore on or off, and the rate limits."""

    host: str = "127.0.0.1"
    port: int = 7860
    allowed_hosts: tuple[str, ...] = ()
    users: dict[str, str] | None = None
    anonymous: bool = False
    explore: bool = False
    limits: RateLimits = field(default_factory=RateLimits)

    def check(self) -> None:
        """Refuse to serve beyond this machine without logins or an explicit `--anonymous`, and a
        wildcard address without the names people will type."""
        if is_loopback(self.host):
            return
        if not self.users and not self.anonymous:
            raise ValueError(
                f"--host {self.host} lets other machines in: give --auth-file (logins; write them with "
                "guanaco users add) or --anonymous (anyone may vote, under an id per browser)"
            )
        if is_wildcard(self.host) and not self.allowed_hosts:
            raise ValueError(
                f"--host {self.host} listens on every address: name the ones people will type with "
                "--allowed-host (e.g. --allowed-host arena.example.org)"
            )


class Served:
    """The app running in a uvicorn server on a thread of this process (for tests and benches)."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.server, self.thread, self.url = server, thread, url

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(
    store: Store, exposure: Exposure, benchmark: str | None = None, block: bool = True
) -> Served | None:
    """Build the app behind :class:`arena.webguard.Guard` and serve it on `exposure.host:port`
    (analytics, SSR, monitoring and MCP off). Blocks until stopped unless `block` is False."""
    exposure.check()
    limiter = RateLimiter()
    arena = Arena(store, benchmark, auth=bool(exposure.users), explore=exposure.explore,
                  limits=exposure.limits, limiter=limiter)  # fmt: skip
    blocks = build_app(arena)
    blocks.queue(default_concurrency_limit=8)
    outer = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    outer.add_middleware(CORSMiddleware, allow_origins=[], allow_credentials=False)  # no origin but our own
    outer.add_middleware(Guard, hosts=allowed_hosts(exposure.host, exposure.allowed_hosts),
                         limits=exposure.limits, limiter=limiter,
                         voters=None if exposure.users else VoterIds())  # fmt: skip
    auth = (
        Authenticator(exposure.users, limiter, exposure.limits.login_failures).check
        if exposure.users
        else None
    )
    gr.mount_gradio_app(
        outer, blocks, path="/", auth=auth, ssr_mode=False, enable_monitoring=False, mcp_server=False,
        footer_links=["api"], theme=theme(), css=CSS, server_name=exposure.host, server_port=exposure.port,
        max_file_size="1kb",  # nothing here takes uploads: no filling the disk through Gradio's /upload
    )  # fmt: skip
    config = uvicorn.Config(outer, host=exposure.host, port=exposure.port, log_level="warning",
                            proxy_headers=False, server_header=False, timeout_graceful_shutdown=5)  # fmt: skip
    server = uvicorn.Server(config)
    if block:
        server.run()
        return None
    thread = threading.Thread(target=server.run, name="guanaco-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on {exposure.host}:{exposure.port}")
        time.sleep(0.05)
    return Served(server, thread, f"http://{exposure.host}:{exposure.port}/")
