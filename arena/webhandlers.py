"""The web app's handlers: issuing battles and taking votes, the leaderboard, and Explore's
search, detail and tags, each behind the rate limits of its kind.

Import this module only after ``GRADIO_ANALYTICS_ENABLED=False`` is set (``app.py`` and
``guanaco app`` do; it is set here too when missing), so that the app calls nothing outside the
machine.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from arena import explore, votes  # noqa: E402
from arena.query.contestants import contestant_names  # noqa: E402
from arena.query.judgments import judge_names, judgments_frame  # noqa: E402
from arena.query.prompts import benchmark_names, category_names  # noqa: E402
from arena.store import Store  # noqa: E402
from arena.webguard import VOTER_HEADER, RateLimiter, RateLimits  # noqa: E402
from arena.webrender import box, escaped, prompt_box  # noqa: E402

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
