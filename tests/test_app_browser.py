"""The arena in real Chromium (Debian's package) driven by playwright, against the app on 127.0.0.1.

Screenshots of each tab land in the test's temporary folder for a person to look at."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from arena.query.judgments import read_judgments
from arena.store import Store, Tag
from tests.arena_seed import PAYLOAD, add_judgment, running_app, seed_arena

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip
SCRIPT_TEXT = "<script>window.__pwned=1</script>"

pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason=f"{CHROMIUM} missing: apt-get install chromium"
)


def human_votes(store: Store) -> int:
    return len(read_judgments(store, judge="human"))


def test_vote_reveal_safety_leaderboard_explore(store: Store, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    generations = seed_arena(store, prompts=2)
    gpt4 = add_judgment(
        store, generations["0", "alpha"], generations["0", "beta"], "2", raw="B is better. " + PAYLOAD
    )
    long = add_judgment(store, generations["1", "beta"], generations["1", "gamma"], "tie", raw="Both fine.")
    expect.set_options(timeout=30_000)
    with running_app(store, explore=True) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        outside = []
        page.on("request", lambda r: r.url.startswith(("http", "ws")) and not r.url.startswith(url)
                and outside.append(r.url))  # fmt: skip

        page.goto(url)
        page.get_by_role("button", name="Next").click()
        vote_a = page.get_by_role("button", name="A is better")
        expect(vote_a).to_be_enabled()

        # vote until the HTML payload has been on screen (6 battles exist, so the loop ends)
        votes, seen_payload = 0, False
        for _ in range(6):
            answers = page.locator("#answer-a, #answer-b")
            expect(answers.first).not_to_be_empty()
            if SCRIPT_TEXT in answers.all_inner_texts()[0] + answers.all_inner_texts()[1]:
                seen_payload = True
                expect(page.get_by_text(SCRIPT_TEXT)).to_be_visible()
                page.screenshot(path=tmp_path / "vote.png", full_page=True)
            if votes == 0:
                vote_a.dblclick()  # a double click stores one vote
            else:
                page.get_by_role("button", name="Tie").click()
            votes += 1
            expect(page.locator("#reveal")).to_contain_text("Vote recorded")
            assert page.locator("#reveal .model-a").inner_text() in {"alpha", "beta", "gamma"}
            assert human_votes(store) == votes
            expect(vote_a).to_be_disabled()
            if seen_payload:
                page.screenshot(path=tmp_path / "vote-revealed.png", full_page=True)
                break
            page.get_by_role("button", name="Next").click()
            expect(page.locator("#reveal")).to_have_count(0)
        assert seen_payload
        assert page.evaluate("typeof window.__pwned") == "undefined"

        page.get_by_role("tab", name="Leaderboard").click()
        expect(page.locator("#board-info")).to_contain_text(f"judgments rated: {votes + 2}")
        expect(page.locator("#board")).to_contain_text("alpha")
        page.get_by_label("humans").check()
        expect(page.locator("#board-info")).to_contain_text(f"judgments rated: {votes}")
        expect(page.locator("#board-plot img")).to_be_visible()
        page.screenshot(path=tmp_path / "leaderboard.png", full_page=True)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        board_csv = Path(download.value.path()).read_text()
        assert "# method: bt" in board_csv and f"judgments rated: {votes}" in board_csv

        page.get_by_role("tab", name="Explore").click()
        page.get_by_role("button", name="Show judgments").click()
        expect(page.get_by_text(f"{votes + 2} judgments")).to_be_visible()
        with page.expect_download() as download:
            page.get_by_role("button", name="Export JSON").click()
        exported = json.loads(Path(download.value.path()).read_text())
        assert len(exported) == votes + 2 and {"answer_1", "answer_2", "rationale"} <= set(exported[0])
        page.locator("#judgment-id input").fill(str(gpt4))
        page.get_by_role("button", name="Open").click()
        expect(page.locator("#rationale")).to_contain_text("B is better. " + SCRIPT_TEXT)  # as text
        expect(page.locator("#slot-1")).to_contain_text(SCRIPT_TEXT)
        expect(page.locator("#slot-1")).to_contain_text('<img src=x onerror="window.__pwned=2">')
        page.get_by_label("Note").fill("judge missed the injection")
        page.get_by_role("button", name="Tag", exact=True).click()
        expect(page.get_by_text("Tagged judgment")).to_be_visible()
        expect(page.locator("#detail-info")).to_contain_text("lemon by anon-")
        expect(page.locator("#detail-info")).to_contain_text("judge missed the injection")
        page.screenshot(path=tmp_path / "explore.png", full_page=True)

        # a click on a row opens it; a long answer scrolls inside its box, the page keeps its layout
        rows = page.locator("#results").get_by_role("row")
        rows.filter(has_text="openai:gpt-4").filter(has_text="tie").get_by_role("gridcell").first.click()
        expect(page.locator("#judgment-id input")).to_have_value(str(long))
        expect(page.locator("#slot-1")).to_contain_text("beta paragraph 39")
        box = page.locator("#slot-1 .answer-box")
        assert box.evaluate("e => e.scrollHeight > e.clientHeight + 100")
        assert box.bounding_box()["height"] < 700
        page.screenshot(path=tmp_path / "explore-long.png", full_page=True)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        browser.close()

    with store.session() as s:
        tags = s.execute(select(Tag.judgment_id, Tag.annotator, Tag.tag, Tag.note)).all()
    assert len(tags) == 1 and tags[0][0] == gpt4 and tags[0][2:] == ("lemon", "judge missed the injection")
    assert f"human:{tags[0][1]}" in set(read_judgments(store, judge="human")["judge"])  # the voter's own id
    assert human_votes(store) == votes
    assert not outside, f"the page called outside the machine: {outside}"
    assert {p.name for p in tmp_path.glob("*.png")} >= {
        "vote.png",
        "leaderboard.png",
        "explore.png",
        "explore-long.png",
    }


def test_explore_shortcuts_and_leaderboard_through_the_app_handlers(store: Store) -> None:
    from arena.webhandlers import ANY, Arena

    g = seed_arena(store, prompts=3)
    add_judgment(store, g["2", "alpha"], g["2", "beta"], "1")
    add_judgment(store, g["2", "beta"], g["2", "alpha"], "1")
    add_judgment(store, g["2", "alpha"], g["2", "beta"], "2", judge="human:x")
    arena = Arena(store)
    found = {
        shortcut: arena.search(ANY, ANY, ANY, ANY, ANY, "all", shortcut, None)[1]
        for shortcut in ("all", "position flips", "GPT-4 vs human disagreements", "biggest upsets")
    }
    assert len(found["all"]) == 3
    assert found["position flips"]["flip"].tolist() == [1, 1]
    assert len(found["GPT-4 vs human disagreements"]) == 3
    assert {"winner", "loser", "gap"} <= set(found["biggest upsets"].columns)
    for method in ("Elo over orderings", "Bradley-Terry", "TrueSkill"):
        info, table, plot, _ = arena.leaderboard(method, "all", ANY, True, None)
        assert "judgments rated: 3" in info and set(table["model"]) == {"alpha", "beta"}
        assert {"lower", "upper"} <= set(table.columns) and Path(plot).stat().st_size > 0
    info, table, plot, _ = arena.leaderboard("Bradley-Terry", "humans", "mt-bench", False, None)
    assert info.startswith("Nothing to rate") and table.empty and plot is None


def test_safe_markdown_keeps_formatting_and_escapes_everything_else() -> None:
    from arena.webrender import safe_markdown

    shown = safe_markdown('**b** `<i>` [x](javascript:alert(1)) <a href="https://e.org" onclick="x()">l</a>')
    assert "<strong>b</strong>" in shown and "<code>&lt;i&gt;</code>" in shown
    assert "javascript" not in shown and 'href="https://e.org"' in shown
    assert "&lt;a href" in shown and not re.search(r"<[^>]*onclick", shown)  # raw HTML is text
    assert set(re.findall(r"<(/?\w+)", safe_markdown(PAYLOAD))) == {"p", "/p"}  # the payload is text


@pytest.mark.parametrize(
    "hostile",
    [
        "[x](JaVaScRiPt:alert(1))",
        "[x](  javascript:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        '[x](https://e.org "t\\" onmouseover=\\"alert(1))',
        '<https://e.org/"onclick="alert(1)>',
        "![i](https://e.org/x.png)",
        '<svg onload="alert(1)">',
        "<iframe src=javascript:alert(1)></iframe>",
        "```\n</code></pre><script>alert(1)</script>\n```",
        "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    ],
)
def test_safe_markdown_leaves_no_script_handler_or_outside_fetch(hostile: str) -> None:
    from html.parser import HTMLParser

    from arena.webrender import ALLOWED_TAGS, safe_markdown

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[str, dict[str, str | None]]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.seen.append((tag, dict(attrs)))

    parser = Tags()
    parser.feed(safe_markdown(hostile))
    assert {tag for tag, _ in parser.seen} <= ALLOWED_TAGS
    for _tag, attrs in parser.seen:
        assert set(attrs) <= {"href", "title", "align", "rel"}  # no on*, src or style attribute
        assert (attrs.get("href") or "https://").startswith(("http://", "https://", "mailto:"))
